//! The pages in real headless Chromium: web-playground/tests/browser.mjs drives GraphiQL and the
//! live dashboard, web-playground/tests/viewer.mjs the embeddable viewer in a host page of its
//! own; both use Debian's /usr/bin/chromium with playwright-core against this app and record
//! events from outside the browser. `scripts/test` installs both; screenshots go to
//! test-artifacts/.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::process::Command;

use crate::helpers::{TestApp, TENANT};

const ARTIFACTS: &str = "test-artifacts";
/// Far more than the scenarios need; only a browser that hangs gets near it.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

/// Runs `script` with node and `args`; its output once it succeeded.
async fn run_browser_script(script: &str, args: &[String]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("node")
        .arg(root.join(script))
        .args(args)
        .arg(root.join(ARTIFACTS))
        .current_dir(root)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_DEADLINE, run)
        .await
        .expect("the browser scenarios finish in time")
        .expect("node runs (scripts/test installs what the browser tests need)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{stdout}");
    stdout
}

#[tokio::test]
async fn graphiql_and_the_dashboard_work_in_headless_chromium() {
    let app = TestApp::spawn().await;
    run_browser_script(
        "web-playground/tests/browser.mjs",
        &[app.url(""), app.key.clone()],
    )
    .await;
}

#[tokio::test]
async fn the_viewer_works_embedded_in_a_strict_host_page() {
    // The host page is another origin, allowed by CORS like a tenant's product would be.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let app = TestApp::spawn_with(|config| {
        config.http.cors_origins = vec![format!("http://127.0.0.1:{host_port}")];
    })
    .await;
    let body = app
        .gql_as(
            &app.admin_key,
            "mutation { setDisplayTemplate(action: \"invoice.*\", template: \"{{actor.id}} filed invoice {{target.id}} <for> \\\"{{group.id}}\\\"\") { action } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let mut inputs: Vec<_> = (0..30)
        .map(|i| {
            json!({
                "action": "invoice.file",
                "service": "billing",
                "actor": { "id": "zoe", "href": "/customers/zoe" },
                "target": { "id": format!("#{i}"), "type": "invoice" },
                "group": { "id": "org-a" },
                "occurredAt": format!("2026-11-01T10:{i:02}:00Z"),
                "message": if i % 10 == 3 { "refund issued" } else { "filed" },
            })
        })
        .collect();
    // Another group's and an ungrouped event: never in the viewer.
    inputs.push(json!({ "action": "invoice.file", "service": "billing", "actor": { "id": "x" }, "group": { "id": "org-b" }, "message": "refund" }));
    inputs.push(json!({ "action": "invoice.file", "service": "billing", "actor": { "id": "y" }, "message": "refund" }));
    app.record_all(&inputs).await;
    app.wait_stored(TENANT, 32).await;
    let minted = app
        .data_as(
            &app.admin_key,
            "mutation { createViewerToken(groupId: \"org-a\", exportAllowed: true) { token } }",
            json!({}),
        )
        .await;
    let token = minted["createViewerToken"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    run_browser_script(
        "web-playground/tests/viewer.mjs",
        &[app.url(""), host_port.to_string(), token, app.key.clone()],
    )
    .await;
}
