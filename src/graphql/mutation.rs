//! Recording events.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object};

use super::error::{ingest_error, ApiError};
use super::guard::principal;
use super::inputs::RecordEventInput;
use super::types::RecordEventPayload;
use super::Services;
use crate::access::auth::Scope;
use crate::app::own_trail::SYSTEM_TENANT;
use crate::app::record::IngestError;
use crate::domain::{check_not_reserved, EventDraft, RecordedBy};

#[derive(Default)]
pub struct RecordMutation;

#[Object]
impl RecordMutation {
    /// Records one event. Answers once the event is durably on the bus.
    async fn record_event(
        &self,
        ctx: &Context<'_>,
        input: RecordEventInput,
    ) -> async_graphql::Result<RecordEventPayload> {
        let mut receipts = record(ctx, "input", vec![input])
            .await
            .map_err(|e| e.extend())?;
        receipts.pop().ok_or_else(|| ApiError::Internal.extend())
    }

    /// Records up to 1000 events at once: all of them, or none if any input is invalid.
    async fn record_events(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<RecordEventInput>,
    ) -> async_graphql::Result<Vec<RecordEventPayload>> {
        record(ctx, "inputs", inputs).await.map_err(|e| e.extend())
    }
}

async fn record(
    ctx: &Context<'_>,
    argument: &str,
    inputs: Vec<RecordEventInput>,
) -> Result<Vec<RecordEventPayload>, ApiError> {
    let principal = principal(ctx, Scope::EventsWrite)?;
    if principal.tenant == SYSTEM_TENANT {
        return Err(ApiError::Forbidden(format!(
            "tenant {SYSTEM_TENANT} is written only by the service itself"
        )));
    }
    let services = ctx.data_unchecked::<Arc<Services>>();
    let drafts: Vec<EventDraft> = inputs.into_iter().map(Into::into).collect();
    for (index, draft) in drafts.iter().enumerate() {
        check_not_reserved(draft)
            .map_err(|error| ingest_error(argument, IngestError::Invalid { index, error }))?;
    }
    // Provenance from the credentials, never from the input.
    let recorded_by = RecordedBy {
        id: principal.credential.id(),
        kind: principal.credential.kind().to_owned(),
    };
    let receipts = services
        .recorder
        .record(&principal.tenant, &recorded_by, drafts)
        .await
        .map_err(|e| ingest_error(argument, e))?;
    Ok(receipts.into_iter().map(Into::into).collect())
}
