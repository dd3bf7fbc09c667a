//! A tiny HTTP/1.1 server for health checks in tests: `/up` answers 200,
//! `/down` 503, `/slow` 200 after 800 ms, and paths under `/services/` 200
//! `ok`, as a Slack incoming webhook does; every request is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct TestHttp {
    pub addr: SocketAddr,
    /// Each request as received: request line, headers and body.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl TestHttp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn start() -> TestHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut len = 0;
                    // Read the head, then as much body as Content-Length says.
                    loop {
                        let Ok(n) = stream.read(&mut buf[len..]).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        len += n;
                        let text = String::from_utf8_lossy(&buf[..len]).to_string();
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let content_length = text[..head_end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if len >= head_end + 4 + content_length || len == buf.len() {
                                break;
                            }
                        }
                    }
                    let request = String::from_utf8_lossy(&buf[..len]).to_string();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                    log.lock().unwrap().push(request);
                    let (status, body) = match path.as_str() {
                        "/up" => ("200 OK", "ok"),
                        "/down" => ("503 Service Unavailable", "down"),
                        "/slow" => {
                            tokio::time::sleep(Duration::from_millis(800)).await;
                            ("200 OK", "slow but ok")
                        }
                        p if p.starts_with("/services/") => ("200 OK", "ok"),
                        _ => ("404 Not Found", "no such path"),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TestHttp { addr, requests }
    }
}
