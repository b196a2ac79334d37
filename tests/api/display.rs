//! Display templates: an admin's sentence per action (exact, or `prefix.*`) becomes each event's
//! `displayText`, HTML-escaped, with missing fields empty; other actions get a generic sentence.

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TENANT};

const SET: &str = "mutation($a: String!, $t: String) { setDisplayTemplate(action: $a, template: $t) { action template } }";

async fn set(app: &TestApp, action: &str, template: Option<&str>) -> Value {
    app.gql_as(&app.admin_key, SET, json!({ "a": action, "t": template }))
        .await
}

/// Each stored event's action and display text.
async fn sentences(app: &TestApp) -> Vec<(String, String)> {
    let data = app
        .data_as(
            &app.key,
            "{ auditEvents(orderBy: OCCURRED_AT_ASC) { edges { node { action displayText } } } }",
            json!({}),
        )
        .await;
    data["auditEvents"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["action"].as_str().expect("action").to_owned(),
                node["displayText"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn templates_turn_events_into_escaped_sentences() {
    let app = TestApp::spawn().await;
    let mut update = event("invoice.update");
    update["actor"] = json!({ "id": "u1", "name": "<script>alert(1)</script>" });
    update["target"] = json!({ "id": "INV-7", "type": "invoice" });
    update["occurredAt"] = json!("2026-11-01T10:00:00Z");
    let mut create = event("invoice.create");
    create["occurredAt"] = json!("2026-11-01T10:01:00Z");
    let mut login = event("user.login");
    login["occurredAt"] = json!("2026-11-01T10:02:00Z");
    app.record_all(&[update, create, login]).await;
    app.wait_stored(TENANT, 3).await;

    for (action, template) in [
        (
            "invoice.update",
            "{{actor.name}} updated invoice {{target.id}}",
        ),
        (
            "invoice.*",
            "{{actor.id}} worked on invoice {{target.id}} ({{group.name}})",
        ),
    ] {
        let body = set(&app, action, Some(template)).await;
        assert_eq!(
            body["data"]["setDisplayTemplate"]["template"], template,
            "{body}"
        );
    }
    assert_eq!(
        sentences(&app).await,
        vec![
            (
                "invoice.update".to_owned(),
                "&lt;script&gt;alert(1)&lt;/script&gt; updated invoice INV-7".to_owned()
            ),
            // The prefix's template, its missing fields empty.
            (
                "invoice.create".to_owned(),
                "alice worked on invoice  ()".to_owned()
            ),
            (
                "user.login".to_owned(),
                "alice (user) did user.login".to_owned()
            ),
        ]
    );

    // Removed: the generic sentence again.
    let body = set(&app, "invoice.update", None).await;
    assert_eq!(body["data"]["setDisplayTemplate"], Value::Null, "{body}");
    let listed = app
        .data_as(&app.admin_key, "{ displayTemplates { action } }", json!({}))
        .await;
    assert_eq!(
        listed["displayTemplates"],
        json!([{ "action": "invoice.*" }])
    );
    assert_eq!(sentences(&app).await[0].1, "u1 worked on invoice INV-7 ()");
}

#[tokio::test]
async fn bad_templates_are_refused_with_their_field_and_only_admins_set_them() {
    let app = TestApp::spawn().await;
    for (action, template, field) in [
        ("invoice.update", "{{actor.password}}", "template"),
        ("invoice.update", "{{actor.id", "template"),
        ("Invoice.Update", "x", "action"),
        ("invoice.", "x", "action"),
    ] {
        let body = set(&app, action, Some(template)).await;
        let error = &body["errors"][0]["extensions"];
        assert_eq!(error["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(error["field"], field, "{action} {template}: {body}");
    }
    let body = app
        .gql_as(&app.key, SET, json!({ "a": "invoice.update", "t": "x" }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
}
