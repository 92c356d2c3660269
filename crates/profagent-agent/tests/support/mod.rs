//! A scripted HTTP server on 127.0.0.1 for provider tests: it answers each request with the
//! next scripted response (status, body, delay) and records what it received. It stops after
//! its script or after `SERVER_DEADLINE`, so a broken client cannot hang the test suite.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SERVER_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

pub fn ok(body: serde_json::Value) -> Scripted {
    Scripted {
        status: 200,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

pub fn status(code: u16, body: &str) -> Scripted {
    Scripted {
        status: code,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

pub fn hang(delay: Duration) -> Scripted {
    Scripted {
        status: 200,
        body: "{}".into(),
        delay,
    }
}

/// An OpenAI chat-completions answer whose message content is `content`.
pub fn chat(content: &str) -> Scripted {
    ok(serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]
    }))
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Server {
    pub base_url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

pub fn serve(script: Vec<Scripted>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut script = script.into_iter();
        while started.elapsed() < SERVER_DEADLINE {
            let (mut stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            stream.set_nonblocking(false).ok();
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            log.lock().unwrap().push(request);
            let Some(reply) = script.next() else { break };
            std::thread::sleep(reply.delay);
            let text = format!(
                "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                reply.status,
                reply.body.len(),
                reply.body
            );
            let _ = stream.write_all(text.as_bytes());
        }
    });
    Server {
        base_url: format!("http://127.0.0.1:{port}"),
        received,
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buffer[header_end..]).unwrap_or(serde_json::Value::Null);
    Some(Received {
        path,
        headers,
        body,
    })
}
