//! GraphiQL and the live dashboard in real headless Chromium: web-playground/tests/browser.mjs
//! drives Debian's /usr/bin/chromium with playwright-core against this app and records events
//! from outside the browser. `scripts/test` installs both; screenshots go to test-artifacts/.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::TestApp;

const SCRIPT: &str = "web-playground/tests/browser.mjs";
const ARTIFACTS: &str = "test-artifacts";
/// Far more than the scenarios need; only a browser that hangs gets near it.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test]
async fn graphiql_and_the_dashboard_work_in_headless_chromium() {
    let app = TestApp::spawn().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("node")
        .arg(root.join(SCRIPT))
        .arg(app.url(""))
        .arg(&app.key)
        .arg(root.join(ARTIFACTS))
        .current_dir(root)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_DEADLINE, run)
        .await
        .expect("the browser scenarios finish in time")
        .expect("node runs (scripts/test installs what the browser tests need)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{SCRIPT} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{stdout}");
}
