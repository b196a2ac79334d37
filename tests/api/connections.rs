//! What a connection without a key can hold: a request body is refused from its headers before
//! it is read (no `100 Continue`), and a client slow to send headers, or idle between requests,
//! is cut off after the header timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// Everything the server sends until it closes the connection, if it does within `wait`.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(wait, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

/// What the server answers within `wait` (its first bytes), without waiting for a close.
async fn first_answer(stream: &mut TcpStream, wait: Duration) -> String {
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(wait, stream.read(&mut buffer))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

#[tokio::test]
async fn a_body_without_a_key_is_refused_before_it_is_read() {
    let app = TestApp::spawn().await;
    // Announces 29 MiB and asks whether to send them: the answer is 401, not "100 Continue".
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 30408704\r\nExpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = first_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // Without Expect: the answer comes while the body is still being sent, and with a bad key.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Authorization: Bearer tlk_not-a-key\r\nContent-Length: 30408704\r\n\r\n{\"query\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = first_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_off() {
    let app = TestApp::spawn_with(|config| config.http.header_timeout_ms = 500).await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost:")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(5))
            .await
            .is_some(),
        "a client that never finishes its headers is still connected"
    );

    // One request answered, then silence on the kept-alive connection.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}
