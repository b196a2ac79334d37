//! Publishing accepted events with publisher confirms, by group commit.
//!
//! Each message costs the broker a persistent write, a route to every bound queue, a delivery and
//! an ack per queue, and the worker a delivery; so calls that arrive together travel together.
//! Callers queue their (already encoded) events; one task takes everything waiting, up to a size
//! limit, as one message. While a few messages await their confirm, new callers queue up and form
//! the next one; a lone caller is published at once, never held for a timer. Every caller gets the
//! outcome of the confirm of the message that carried its events.
//!
//! All messages share one confirm-mode channel. A broken channel is replaced on the next publish;
//! while the broker keeps failing, a breaker makes publishing fail at once so callers fall back to
//! the outbox instead of each waiting out a timeout.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};
use tokio::time::Instant;

use super::codec::{encode_group, EncodedEvents};
use super::{connect, publish_confirmed_to, BusError, Topology};
use crate::breaker::{Breaker, BreakerState};
use crate::domain::AuditEvent;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// How calls are grouped into messages.
#[derive(Clone, Copy, Debug)]
pub struct GroupCommit {
    /// Messages awaiting their confirm at once; callers arriving meanwhile form the next group.
    pub max_in_flight: usize,
    /// The most events one message carries (a larger single call still travels, alone)…
    pub max_events: usize,
    /// …and the most bytes of events.
    pub max_bytes: usize,
}

/// How `recordEvent` publishes: how long it waits for the broker and how calls are grouped.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Publishing")]
pub struct PublishSettings {
    /// How long `recordEvent` waits for the broker's confirm before parking the events in the
    /// PostgreSQL outbox (the call still answers ACCEPTED; UNAVAILABLE only if that fails too).
    #[arg(
        value_name = "TIMEOUT_MS",
        id = "publish-timeout-ms",
        long = "publish-timeout-ms",
        env = "TRACELEDGER_PUBLISH_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub timeout_ms: u64,

    /// Messages the publisher may have awaiting the broker's confirm at once. Calls arriving
    /// meanwhile wait and travel together in the next message (group commit).
    #[arg(
        value_name = "MAX_IN_FLIGHT",
        id = "publish-max-in-flight",
        long = "publish-max-in-flight",
        env = "TRACELEDGER_PUBLISH_MAX_IN_FLIGHT",
        default_value_t = 2
    )]
    pub max_in_flight: usize,

    /// The most events one message of grouped calls carries…
    #[arg(
        value_name = "GROUP_MAX_EVENTS",
        id = "publish-group-max-events",
        long = "publish-group-max-events",
        env = "TRACELEDGER_PUBLISH_GROUP_MAX_EVENTS",
        default_value_t = 1000
    )]
    pub group_max_events: usize,

    /// …and the most bytes of events (a single larger call still travels, alone).
    #[arg(
        value_name = "GROUP_MAX_BYTES",
        id = "publish-group-max-bytes",
        long = "publish-group-max-bytes",
        env = "TRACELEDGER_PUBLISH_GROUP_MAX_BYTES",
        default_value_t = 4 * 1024 * 1024
    )]
    pub group_max_bytes: usize,

    /// How often the outbox relay looks for events parked while the broker was down (or by the
    /// operator's commands, which run without it).
    #[arg(
        value_name = "OUTBOX_POLL_MS",
        id = "outbox-poll-ms",
        long = "outbox-poll-ms",
        env = "TRACELEDGER_OUTBOX_POLL_MS",
        default_value_t = 1000
    )]
    pub outbox_poll_ms: u64,
}

impl PublishSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn outbox_poll(&self) -> Duration {
        Duration::from_millis(self.outbox_poll_ms)
    }

    pub fn group_commit(&self) -> GroupCommit {
        GroupCommit {
            max_in_flight: self.max_in_flight.max(1),
            max_events: self.group_max_events.max(1),
            max_bytes: self.group_max_bytes,
        }
    }
}

pub struct Publisher {
    broker: Arc<Broker>,
    waiting: mpsc::UnboundedSender<Waiting>,
}

/// The shared confirm-mode channel and what guards it.
struct Broker {
    url: String,
    topology: Topology,
    timeout: Duration,
    breaker: Breaker,
    link: Mutex<Option<Link>>,
}

struct Link {
    // Kept so the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

/// One caller's events, waiting for a message to carry them.
struct Waiting {
    events: EncodedEvents,
    /// The first event's id, the message id if its group is led by this caller.
    first_id: Option<String>,
    /// When the caller stops waiting for a confirm: its own publish timeout, queueing included.
    deadline: Instant,
    answer: oneshot::Sender<Result<(), BusError>>,
}

impl Publisher {
    /// Connects and declares the topology, so the first publish has somewhere to go. A broker
    /// that is down at start is not fatal: publishing reconnects once it is back.
    pub async fn connect(
        url: &str,
        topology: Topology,
        settings: &PublishSettings,
        breaker: Breaker,
    ) -> Self {
        let group = settings.group_commit();
        let broker = Arc::new(Broker {
            url: url.to_owned(),
            topology,
            timeout: settings.timeout(),
            breaker,
            link: Mutex::new(None),
        });
        if let Err(e) = broker.channel().await {
            tracing::warn!(error = %e, "broker unreachable at start; recording uses the outbox");
            broker.breaker.record_failure();
        }
        let (waiting, queue) = mpsc::unbounded_channel();
        // Ends when the publisher is dropped: then nothing more can be queued.
        tokio::spawn(gather(Arc::clone(&broker), queue, group));
        Self { broker, waiting }
    }

    /// Publishes a call's events, in one persistent message with whatever other calls are
    /// waiting, and returns once the broker confirmed that message (it is then on disk in every
    /// bound durable queue), or with the error that message met.
    pub async fn publish_confirmed(&self, events: &[AuditEvent]) -> Result<(), BusError> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            events: EncodedEvents::encode(events)?,
            first_id: events.first().map(|e| e.id.to_string()),
            deadline: Instant::now() + self.broker.timeout,
            answer,
        };
        let deadline = waiting.deadline;
        self.waiting.send(waiting).map_err(|_| BusError::Stopped)?;
        // Each caller waits until its own deadline, whatever its message's.
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(answer) => answer.unwrap_or(Err(BusError::Stopped)),
            Err(_) => Err(BusError::Timeout),
        }
    }

    /// Publishes an already encoded batch (from the outbox) as a message of its own.
    pub async fn publish_payload(
        &self,
        payload: &[u8],
        message_id: Option<&str>,
    ) -> Result<(), BusError> {
        let deadline = Instant::now() + self.broker.timeout;
        self.broker.publish(payload, message_id, deadline).await
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.broker.breaker.state()
    }

    /// Whether the broker link is up right now (for readiness).
    pub async fn is_connected(&self) -> bool {
        self.broker
            .link
            .lock()
            .await
            .as_ref()
            .is_some_and(|link| link.channel.status().connected())
    }
}

/// Forms groups from the waiting callers and publishes each, with at most `max_in_flight`
/// awaiting their confirm: a slot comes free, then everything queued meanwhile goes.
async fn gather(
    broker: Arc<Broker>,
    mut queue: mpsc::UnboundedReceiver<Waiting>,
    limits: GroupCommit,
) {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    // A caller that did not fit in the previous group leads the next one.
    let mut held_over: Option<Waiting> = None;
    loop {
        let Ok(slot) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let first = match held_over.take() {
            Some(waiting) => waiting,
            None => match queue.recv().await {
                Some(waiting) => waiting,
                None => return,
            },
        };
        let mut group = Group::new(first);
        while let Ok(waiting) = queue.try_recv() {
            if !group.has_room_for(&waiting, &limits) {
                held_over = Some(waiting);
                break;
            }
            group.push(waiting);
        }
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            group.publish(&broker).await;
            drop(slot);
        });
    }
}

/// Callers whose events travel in one message.
struct Group {
    members: Vec<Waiting>,
    events: usize,
    bytes: usize,
}

impl Group {
    fn new(first: Waiting) -> Self {
        let mut group = Self {
            members: Vec::new(),
            events: 0,
            bytes: 0,
        };
        group.push(first);
        group
    }

    fn push(&mut self, waiting: Waiting) {
        self.events += waiting.events.count();
        self.bytes += waiting.events.size_bytes();
        self.members.push(waiting);
    }

    fn has_room_for(&self, waiting: &Waiting, limits: &GroupCommit) -> bool {
        self.events + waiting.events.count() <= limits.max_events
            && self.bytes + waiting.events.size_bytes() <= limits.max_bytes
    }

    /// Publishes the members' events as one message and answers each member with its outcome.
    async fn publish(self, broker: &Broker) {
        // A caller whose time ran out while queued (every slot was held up) is told so, and
        // nothing goes for it.
        let now = Instant::now();
        let (late, members): (Vec<Waiting>, Vec<Waiting>) =
            self.members.into_iter().partition(|w| w.deadline <= now);
        for waiting in late {
            let _ = waiting.answer.send(Err(BusError::Timeout));
        }
        // The message has as long as its most patient member: a member that joined late in
        // its own wait must not cut the others' time short (and count a timeout against the
        // broker that was the queue's). Each member stops waiting at its own deadline.
        let (Some(leader), Some(deadline)) =
            (members.first(), members.iter().map(|w| w.deadline).max())
        else {
            return;
        };
        let payload = encode_group(members.iter().map(|w| &w.events));
        let result = broker
            .publish(&payload, leader.first_id.as_deref(), deadline)
            .await;
        if result.is_ok() {
            let events: usize = members.iter().map(|w| w.events.count()).sum();
            metrics::histogram!("traceledger_publish_group_events").record(events as f64);
        }
        for waiting in members {
            // A caller that gave up is not listening any more.
            let _ = waiting.answer.send(result.clone());
        }
    }
}

impl Broker {
    /// Publishes one persistent message and waits for its confirm until `deadline`.
    async fn publish(
        &self,
        payload: &[u8],
        message_id: Option<&str>,
        deadline: Instant,
    ) -> Result<(), BusError> {
        if !self.breaker.allow() {
            return Err(BusError::Unavailable);
        }
        let started = Instant::now();
        let result = tokio::time::timeout_at(deadline, self.publish_once(payload, message_id))
            .await
            .unwrap_or(Err(BusError::Timeout));
        self.breaker.record(&result);
        if result.is_ok() {
            metrics::histogram!("traceledger_publish_confirm_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn publish_once(&self, payload: &[u8], message_id: Option<&str>) -> Result<(), BusError> {
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_app_id("traceledger".into());
        if let Some(id) = message_id {
            properties = properties.with_message_id(id.into());
        }
        let channel = self.channel().await?;
        publish_confirmed_to(&channel, &self.topology.exchange, "", payload, properties).await
    }

    /// The shared channel, reopened (with the topology declared again) if it broke.
    async fn channel(&self) -> Result<Channel, BusError> {
        let mut link = self.link.lock().await;
        if let Some(current) = link.as_ref() {
            if current.channel.status().connected() {
                return Ok(current.channel.clone());
            }
            tracing::warn!("broker channel lost; reconnecting the publisher");
        }
        let connection = connect(&self.url, "traceledger-publisher").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.topology.declare(&channel).await?;
        *link = Some(Link {
            _connection: connection,
            channel: channel.clone(),
        });
        Ok(channel)
    }
}
