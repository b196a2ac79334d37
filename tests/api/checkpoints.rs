//! The ledger's tree as a client checks it: signed checkpoints, each event's leaf recomputed
//! from the API's own JSON, inclusion and consistency proofs and the C2SP tiles, all verified
//! with an independent implementation (ct-merkle), never with the service's own code.

use std::time::Duration;

use base64::Engine as _;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof};
use serde_json::{json, Value};
use sha2_for_tests::{Digest, Sha256};

use traceledger::domain::ledger::{open_checkpoint, CheckpointError, LedgerSigner};

use crate::helpers::TestApp;

const EVENTS: usize = 300;

const EVENT_FIELDS: &str = "id tenant occurredAt receivedAt action outcome severity service \
    actor { id type name ip } target { id type name } message metadata idempotencyKey \
    requestId traceId recordedBy { id type } ledger { index leafHash }";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a base64 string"))
        .expect("base64")
}

/// A proof's hashes, concatenated as ct-merkle reads them.
fn proof_bytes(proof: &Value) -> Vec<u8> {
    proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(unb64)
        .collect()
}

/// What a client commits to for an event: RFC 8785 of the event as the API returned it,
/// without its ledger entry.
fn leaf_of(node: &Value) -> Vec<u8> {
    let mut event = node.clone();
    event.as_object_mut().unwrap().remove("ledger");
    serde_json_canonicalizer::to_vec(&event).unwrap()
}

fn tree_of(leaves: &[Vec<u8>]) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut tree = MemoryBackedTree::new();
    for leaf in leaves {
        tree.push(leaf.clone());
    }
    tree
}

/// Waits for a checkpoint of at least `size` events and returns it.
pub(crate) async fn checkpoint_of(app: &TestApp, key: &str, size: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let data = app
            .data_as(
                key,
                "{ ledgerCheckpoint { size rootHash note verifierKey signedAt } }",
                json!({}),
            )
            .await;
        let checkpoint = &data["ledgerCheckpoint"];
        if checkpoint["size"].as_u64().unwrap_or(0) >= size {
            return checkpoint.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of {size} events: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tenant's events as the API returns them, in ledger order.
async fn events_in_ledger_order(app: &TestApp, key: &str) -> Vec<Value> {
    let mut nodes: Vec<Value> = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .data_as(
                key,
                &format!(
                    "query($after: String) {{ auditEvents(first: 100, after: $after) {{ \
                     edges {{ node {{ {EVENT_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
                ),
                json!({ "after": after }),
            )
            .await;
        let page = &data["auditEvents"];
        nodes.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    nodes.sort_by_key(|n| {
        n["ledger"]["index"]
            .as_u64()
            .expect("a stored event's index")
    });
    nodes
}

#[tokio::test]
async fn checkpoints_are_signed_and_every_proof_verifies_independently() {
    let app = TestApp::spawn().await;
    let inputs: Vec<Value> = (0..EVENTS)
        .map(|i| {
            json!({
                "action": format!("doc.edit.{}", i % 7), "service": "docs", "actor": { "id": format!("u{i}"), "type": "user" },
                "metadata": { "n": i, "tags": ["a", i.to_string()], "ratio": 0.5 },
                "message": format!("edit number {i} ✓"),
            })
        })
        .collect();
    for chunk in inputs.chunks(100) {
        app.record_all(chunk).await;
    }
    app.wait_stored(crate::helpers::TENANT, EVENTS as i64).await;
    let checkpoint = checkpoint_of(&app, &app.key, EVENTS as u64).await;
    assert_eq!(checkpoint["size"], EVENTS);

    // The key is public; the checkpoint verifies with it and with no other key.
    let key = app
        .http
        .get(app.url("/ledger/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = key.trim().to_owned();
    assert_eq!(checkpoint["verifierKey"], key.as_str());
    let note = checkpoint["note"].as_str().unwrap();
    let opened = open_checkpoint(note, std::slice::from_ref(&key)).expect("a valid signature");
    assert_eq!(opened.size, EVENTS as u64);
    assert_eq!(b64(&opened.root), checkpoint["rootHash"].as_str().unwrap());
    assert!(opened
        .origin
        .ends_with(&format!("/{}", crate::helpers::TENANT)));
    let (stranger, _) = LedgerSigner::generate("traceledger").unwrap();
    assert_eq!(
        open_checkpoint(note, &[stranger.verifier_key().to_owned()]),
        Err(CheckpointError::UnknownKey)
    );

    // Every leaf is the canonical JSON of the event as served; indices are 0..n once each.
    let nodes = events_in_ledger_order(&app, &app.key).await;
    assert_eq!(nodes.len(), EVENTS);
    let leaves: Vec<Vec<u8>> = nodes.iter().map(leaf_of).collect();
    for (i, (node, leaf)) in nodes.iter().zip(&leaves).enumerate() {
        assert_eq!(node["ledger"]["index"], i);
        let hash = Sha256::new()
            .chain_update([0u8])
            .chain_update(leaf)
            .finalize();
        assert_eq!(node["ledger"]["leafHash"], b64(&hash), "leaf {i}");
    }
    let tree = tree_of(&leaves);
    assert_eq!(
        b64(tree.root().as_bytes()),
        checkpoint["rootHash"].as_str().unwrap()
    );

    // Inclusion proofs, at the tile edges and elsewhere.
    for index in [0usize, 1, 137, 255, 256, 257, EVENTS - 1] {
        let data = app
            .data_as(
                &app.key,
                "query($id: ID!) { inclusionProof(eventId: $id) { ledgerIndex treeSize leafHash rootHash hashes checkpoint { size } } }",
                json!({ "id": nodes[index]["id"] }),
            )
            .await;
        let proof = &data["inclusionProof"];
        assert_eq!(proof["ledgerIndex"], index);
        assert_eq!(proof["treeSize"], EVENTS);
        assert_eq!(proof["checkpoint"]["size"], EVENTS);
        assert_eq!(proof["rootHash"], checkpoint["rootHash"]);
        let hashes = proof_bytes(proof);
        let proof = InclusionProof::<Sha256>::from_bytes(hashes);
        tree.root()
            .verify_inclusion(&leaves[index], index as u64, &proof)
            .unwrap_or_else(|e| panic!("inclusion of {index}: {e:?}"));
    }
    // … and in an older tree.
    let data = app
        .data_as(
            &app.key,
            "query($id: ID!) { inclusionProof(eventId: $id, treeSize: 100) { rootHash hashes } }",
            json!({ "id": nodes[42]["id"] }),
        )
        .await;
    let older = tree_of(&leaves[..100]);
    assert_eq!(
        b64(older.root().as_bytes()),
        data["inclusionProof"]["rootHash"].as_str().unwrap()
    );
    let hashes = proof_bytes(&data["inclusionProof"]);
    older
        .root()
        .verify_inclusion(
            &leaves[42],
            42,
            &InclusionProof::<Sha256>::from_bytes(hashes),
        )
        .expect("inclusion in the older tree");

    // Consistency of older trees with the newest.
    for from in [1usize, 7, 100, 256, EVENTS - 1] {
        let data = app
            .data_as(
                &app.key,
                "query($from: Int!) { consistencyProof(fromSize: $from) { fromRootHash toRootHash hashes } }",
                json!({ "from": from }),
            )
            .await;
        let proof = &data["consistencyProof"];
        let old = tree_of(&leaves[..from]);
        assert_eq!(
            b64(old.root().as_bytes()),
            proof["fromRootHash"].as_str().unwrap()
        );
        assert_eq!(proof["toRootHash"], checkpoint["rootHash"]);
        let hashes = proof_bytes(proof);
        let proof = ConsistencyProof::<Sha256>::try_from_bytes(hashes).unwrap();
        tree.root()
            .verify_consistency(&old.root(), &proof)
            .unwrap_or_else(|e| panic!("consistency from {from}: {e:?}"));
    }

    // Bad sizes are the caller's error, named.
    let body = app
        .gql("{ consistencyProof(fromSize: 301) { hashes } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "fromSize",
        "{body}"
    );
    let body = app
        .gql(
            "{ inclusionProof(eventId: \"0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b\") { hashes } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );

    // Every checkpoint is kept, signed, and in size order.
    let data = app
        .data_as(
            &app.key,
            "{ ledgerCheckpoints(first: 100) { edges { node { size note } } } }",
            json!({}),
        )
        .await;
    let sizes: Vec<u64> = data["ledgerCheckpoints"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let opened = open_checkpoint(
                e["node"]["note"].as_str().unwrap(),
                std::slice::from_ref(&key),
            )
            .unwrap();
            let old = tree_of(&leaves[..opened.size as usize]);
            assert_eq!(
                &opened.root[..],
                &old.root().as_bytes()[..],
                "checkpoint {}",
                opened.size
            );
            e["node"]["size"].as_u64().unwrap()
        })
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert_eq!(sizes.last(), Some(&(EVENTS as u64)));
}

/// Records events until the tenant has `size`, waits for their checkpoint, and returns them
/// all in ledger order.
async fn grow_to(app: &TestApp, size: usize) -> Vec<Value> {
    let from = app.stored_count(crate::helpers::TENANT).await as usize;
    let inputs: Vec<Value> = (from..size)
        .map(|i| json!({ "action": "doc.view", "service": "docs", "actor": { "id": format!("u{i}"), "type": "user" } }))
        .collect();
    for chunk in inputs.chunks(100) {
        app.record_all(chunk).await;
    }
    app.wait_stored(crate::helpers::TENANT, size as i64).await;
    checkpoint_of(app, &app.key, size as u64).await;
    events_in_ledger_order(app, &app.key).await
}

/// Proofs keep the tiles they read; a tile kept while it was partial must not answer for the
/// grown tree, and an older tree's proof reads only its own prefix of a tile kept later.
#[tokio::test]
async fn proofs_of_a_grown_tree_read_past_the_tiles_earlier_proofs_kept() {
    let app = TestApp::spawn().await;
    let prove = |id: Value, size: Option<usize>| {
        let app = &app;
        async move {
            let data = app
                .data_as(
                    &app.key,
                    "query($id: ID!, $size: Int) { inclusionProof(eventId: $id, treeSize: $size) { ledgerIndex treeSize rootHash hashes } }",
                    json!({ "id": id, "size": size }),
                )
                .await;
            data["inclusionProof"].clone()
        }
    };
    let check = |nodes: &[Value], proof: &Value, size: usize| {
        let leaves: Vec<Vec<u8>> = nodes[..size].iter().map(leaf_of).collect();
        let tree = tree_of(&leaves);
        let index = proof["ledgerIndex"].as_u64().unwrap() as usize;
        assert_eq!(proof["treeSize"], size);
        assert_eq!(proof["rootHash"], b64(tree.root().as_bytes()));
        tree.root()
            .verify_inclusion(
                &leaves[index],
                index as u64,
                &InclusionProof::<Sha256>::from_bytes(proof_bytes(proof)),
            )
            .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e:?}"));
    };

    // 260 events: leaf tile 1 holds 4 hashes, and a proof of event 257 keeps it.
    let nodes = grow_to(&app, 260).await;
    let proof = prove(nodes[257]["id"].clone(), None).await;
    check(&nodes, &proof, 260);

    // The tree grows to 400: the same event's proof needs 144 hashes of that tile.
    let nodes = grow_to(&app, 400).await;
    let proof = prove(nodes[257]["id"].clone(), None).await;
    check(&nodes, &proof, 400);
    // … and the older tree is still proven from the tile's first hashes only.
    let proof = prove(nodes[257]["id"].clone(), Some(300)).await;
    check(&nodes, &proof, 300);
    let proof = prove(nodes[3]["id"].clone(), Some(259)).await;
    check(&nodes, &proof, 259);
}

#[tokio::test]
async fn tiles_are_served_as_c2sp_paths_to_their_tenant_only() {
    let app = TestApp::spawn().await;
    let inputs: Vec<Value> = (0..EVENTS)
        .map(|i| json!({ "action": "file.read", "service": "files", "actor": { "id": format!("u{i}"), "type": "user" } }))
        .collect();
    for chunk in inputs.chunks(150) {
        app.record_all(chunk).await;
    }
    app.wait_stored(crate::helpers::TENANT, EVENTS as i64).await;
    checkpoint_of(&app, &app.key, EVENTS as u64).await;
    let nodes = events_in_ledger_order(&app, &app.key).await;
    let leaf_hashes: Vec<Vec<u8>> = nodes
        .iter()
        .map(|n| unb64(&n["ledger"]["leafHash"]))
        .collect();
    let get = |path: &str, key: Option<&str>| {
        let mut request = app.http.get(app.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.bytes().await.unwrap().to_vec(),
            )
        }
    };
    let (status, full) = get("/ledger/tile/0/000", Some(&app.key)).await;
    assert_eq!(status, 200);
    assert_eq!(full, leaf_hashes[..256].concat());
    let (status, partial) = get("/ledger/tile/0/001.p/44", Some(&app.key)).await;
    assert_eq!(status, 200);
    assert_eq!(partial, leaf_hashes[256..].concat());
    // Level 1 holds the root of each full level-0 tile.
    let (status, upper) = get("/ledger/tile/1/000.p/1", Some(&app.key)).await;
    assert_eq!(status, 200);
    let first_256 = tree_of(&nodes[..256].iter().map(leaf_of).collect::<Vec<_>>());
    assert_eq!(upper, first_256.root().as_bytes().to_vec());
    // Not grown that far, not a tile path, no key, another tenant: nothing of this tree.
    assert_eq!(get("/ledger/tile/0/001", Some(&app.key)).await.0, 404);
    assert_eq!(get("/ledger/tile/0/1", Some(&app.key)).await.0, 400);
    assert_eq!(get("/ledger/tile/0/000", None).await.0, 401);
    assert_eq!(get("/ledger/tile/0/000", Some(&app.other_key)).await.0, 404);
    assert_eq!(get("/ledger/checkpoint", None).await.0, 401);
    let (status, note) = get("/ledger/checkpoint", Some(&app.key)).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(note)
        .unwrap()
        .contains(&format!("\n{EVENTS}\n")));
}

#[tokio::test]
async fn a_rotated_key_signs_from_then_on_and_old_checkpoints_keep_their_key() {
    // No worker: the test decides which key seals when.
    let app = TestApp::spawn_without_worker(|_| {}).await;
    let store = &app.store;
    let events = |n| -> Vec<_> {
        (0..n)
            .map(|_| crate::helpers::received_event(crate::helpers::TENANT, chrono::Utc::now()))
            .collect()
    };
    store
        .insert_events(&events(3), traceledger::store::SearchBacklog::Skip)
        .await
        .unwrap();
    app.seal(crate::helpers::TENANT).await;
    let old = LedgerSigner::from_private(app.config.ledger.key.as_deref().unwrap()).unwrap();

    // A worker restarted with a new key lists it at start, then signs with it.
    let (new, _) = LedgerSigner::generate(&app.config.ledger.name).unwrap();
    store.register_ledger_key(new.verifier_key()).await.unwrap();
    store
        .insert_events(&events(2), traceledger::store::SearchBacklog::Skip)
        .await
        .unwrap();
    traceledger::tasks::sealer::seal(store, &new, &app.config.ledger.name, crate::helpers::TENANT)
        .await
        .unwrap();

    let text = |path: &'static str| {
        let request = app.http.get(app.url(path));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(
        text("/ledger/key").await,
        format!("{}\n", new.verifier_key())
    );
    assert_eq!(
        text("/ledger/key?all=true").await,
        format!("{}\n{}\n", old.verifier_key(), new.verifier_key())
    );
    let data = app
        .data_as(
            &app.key,
            "{ ledgerKeys { verifierKey current } ledgerCheckpoints { edges { node { size note verifierKey } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["ledgerKeys"],
        json!([
            { "verifierKey": old.verifier_key(), "current": false },
            { "verifierKey": new.verifier_key(), "current": true },
        ])
    );
    let checkpoints = data["ledgerCheckpoints"]["edges"].as_array().unwrap();
    let (first, second) = (&checkpoints[0]["node"], &checkpoints[1]["node"]);
    assert_eq!(
        (first["size"].clone(), second["size"].clone()),
        (json!(3), json!(5))
    );
    assert_eq!(first["verifierKey"], old.verifier_key());
    assert_eq!(second["verifierKey"], new.verifier_key());
    let only = |key: &LedgerSigner| vec![key.verifier_key().to_owned()];
    assert!(open_checkpoint(first["note"].as_str().unwrap(), &only(&old)).is_ok());
    assert_eq!(
        open_checkpoint(first["note"].as_str().unwrap(), &only(&new)),
        Err(CheckpointError::UnknownKey)
    );
    assert!(open_checkpoint(second["note"].as_str().unwrap(), &only(&new)).is_ok());
    // Both keys together verify the whole ledger.
    let output = app.cli(
        &[
            "verify",
            "--online",
            "--tenant",
            crate::helpers::TENANT,
            "--key",
            old.verifier_key(),
            "--key",
            new.verifier_key(),
        ],
        &[],
    );
    assert!(
        output.contains("5 events in a tree of 5: verified"),
        "{output}"
    );
}
