//! A scripted OpenAI-compatible chat server for CLI tests (real HTTP on localhost).

/// A local OpenAI-compatible chat server: the n-th request gets `answers[n]` (the last one
/// once they run out), for at most `PLAN_SERVER_DEADLINE`; returns its base URL.
pub fn serve_plans(answers: Vec<String>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let bodies: Vec<String> = answers
        .iter()
        .map(|content| {
            serde_json::json!({
                "id": "chatcmpl-test", "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}]
            })
            .to_string()
        })
        .collect();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut served = 0usize;
        while started.elapsed() < PLAN_SERVER_DEADLINE {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).ok();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok();
            // Read the headers, then as many body bytes as Content-Length says.
            let mut request = Vec::new();
            let mut chunk = [0u8; 8192];
            let mut wanted = None;
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..n]);
                if wanted.is_none() {
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        wanted = Some(end + 4 + length);
                    }
                }
                if wanted.is_some_and(|w| request.len() >= w) {
                    break;
                }
            }
            let body = &bodies[served.min(bodies.len() - 1)];
            served += 1;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}/v1")
}

/// How long the scripted plan server answers (a broken client cannot hang the suite; nothing
/// joins the thread). Long enough for a compress run on a loaded machine: at 120 s a vit_tiny
/// run under load 8 reached its second round after the server had stopped, and failed.
pub const PLAN_SERVER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(900);
