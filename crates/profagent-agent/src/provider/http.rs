//! Blocking JSON POST with timeouts and retries, shared by the HTTP providers.
//!
//! Retries on HTTP 429 and 5xx and on read timeouts, with exponential backoff (honouring
//! `Retry-After` up to the cap); a refused connection fails at once with a clear message,
//! since waiting does not start a server. Headers (where keys live) are never recorded.
use std::time::{Duration, Instant};

use crate::error::AgentError;

/// How long and how often to try.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPolicy {
    /// Whole-request timeout (connect + send + the model's generation time).
    pub timeout: Duration,
    /// Extra attempts after the first on 429/5xx/timeouts.
    pub retries: usize,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
    /// Longest single wait (also caps `Retry-After`).
    pub max_backoff: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            timeout: Duration::from_secs(120),
            retries: 3,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// How much of an error body goes into messages.
const BODY_EXCERPT_CHARS: usize = 300;

/// The outcome of a successful POST.
pub struct HttpAnswer {
    pub body: serde_json::Value,
    pub attempts: usize,
    pub seconds: f64,
}

/// POSTs `body` to `url` with `headers`; returns the parsed JSON answer.
/// `fail_fast_status` lists statuses that are returned at once (no retry) so the caller can
/// adapt (e.g. 400 when a server rejects `response_format`).
pub fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
    policy: &HttpPolicy,
) -> Result<HttpAnswer, AgentError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(policy.timeout.min(Duration::from_secs(10)))
        .timeout(policy.timeout)
        .build();
    let started = Instant::now();
    let mut attempts = 0;
    let mut wait = policy.backoff;
    loop {
        attempts += 1;
        let mut request = agent.post(url).set("content-type", "application/json");
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let last = attempts > policy.retries;
        let retry_after = match request.send_json(body) {
            Ok(response) => {
                let text = response
                    .into_string()
                    .map_err(|e| AgentError::BadResponse {
                        url: url.to_string(),
                        reason: format!("cannot read the body: {e}"),
                    })?;
                let body = serde_json::from_str(&text).map_err(|e| AgentError::BadResponse {
                    url: url.to_string(),
                    reason: format!("not JSON ({e}): {}", excerpt(&text)),
                })?;
                return Ok(HttpAnswer {
                    body,
                    attempts,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = response.into_string().unwrap_or_default();
                let retryable = status == 429 || (500..600).contains(&status);
                if !retryable || last {
                    return Err(AgentError::Http {
                        url: url.to_string(),
                        status,
                        attempts,
                        body: excerpt(&text),
                    });
                }
                retry_after
            }
            Err(ureq::Error::Transport(transport)) => {
                let message = transport.to_string();
                let timed_out = message.contains("timed out")
                    || message.contains("Timeout")
                    || message.contains("WouldBlock");
                if !timed_out {
                    return Err(AgentError::Unreachable {
                        url: url.to_string(),
                        reason: message,
                    });
                }
                if last {
                    return Err(AgentError::Timeout {
                        url: url.to_string(),
                        seconds: policy.timeout.as_secs(),
                        attempts,
                    });
                }
                None
            }
        };
        let pause = retry_after.unwrap_or(wait).min(policy.max_backoff);
        std::thread::sleep(pause);
        wait = (wait * 2).min(policy.max_backoff);
    }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.trim().chars().take(BODY_EXCERPT_CHARS).collect();
    if text.trim().chars().count() > BODY_EXCERPT_CHARS {
        out.push('…');
    }
    out
}
