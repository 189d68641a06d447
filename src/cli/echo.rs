//! `scopegate echo`: the demo's upstream on its own, a tiny HTTP server that answers every
//! request with what it received, so the shipped example config (whose upstream is
//! `127.0.0.1:3000`) can be served for real with one more command.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::serve::{bind, run_to_exit, Termination};

pub fn run(listen: SocketAddr) -> ExitCode {
    run_to_exit(async move {
        let mut termination = Termination::new();
        let listener = match bind(listen, " (echo upstream)").await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("scopegate echo: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!("echo upstream listening on http://{addr}; Ctrl-C stops it"),
            Err(e) => eprintln!("scopegate echo: {e}"),
        }
        tokio::select! {
            _ = serve_echo(listener) => {}
            _ = termination.recv() => {}
        }
        ExitCode::SUCCESS
    })
}

/// Answers every request on `listener` with what it received, as JSON.
pub async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                Ok::<_, Infallible>(echo_response(&req))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn echo_response(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "upstream": "scopegate demo echo",
        "method": req.method().as_str(),
        "target": req.uri().to_string(),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body:#}\n"))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
