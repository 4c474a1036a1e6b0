//! A stock `wasi:http` component: it exports `wasi:http/incoming-handler`
//! through wstd and knows nothing of Plasmoid. Plasmoid runs it one instance
//! per request, as Spin and `wasmtime serve` do.
//!
//! - `GET /…` answers `hello from wasi:http at <path>`;
//! - `POST /echo` answers the body it got;
//! - `GET /fetch?url=http://…` makes an outgoing request and answers
//!   `<status> <body>`, or 502 with the error (a denial by policy is one);
//! - `GET /env?name=X` answers the variable's value;
//! - `/trap`, `/spin`, `/alloc` fail on purpose: a panic, an endless loop and
//!   a memory bomb, each ending this request's instance only.

use wstd::http::{Body, Client, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    match path.rsplit('/').next().unwrap_or("") {
        "echo" => {
            let mut body = request.into_body();
            let bytes = body.bytes_contents().await?;
            Ok(Response::new(Body::from(bytes.to_vec())))
        }
        "fetch" => {
            let Some(url) = param("url") else {
                return text(StatusCode::BAD_REQUEST, "give ?url=http://…".into());
            };
            Ok(fetch(&url).await)
        }
        "env" => {
            let name = param("name").unwrap_or_default();
            text(StatusCode::OK, std::env::var(&name).unwrap_or_default())
        }
        "trap" => panic!("asked to trap"),
        "spin" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        _ => text(StatusCode::OK, format!("hello from wasi:http at {path}")),
    }
}

/// An outgoing GET; any failure (a denial included) is a 502 saying why.
async fn fetch(url: &str) -> Response<Body> {
    let got = async {
        let req = Request::get(url).body(Body::empty())?;
        let resp = Client::new().send(req).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let text = String::from_utf8_lossy(body.contents().await?).into_owned();
        Ok::<_, Error>(format!("{status} {text}"))
    };
    match got.await {
        Ok(s) => plain(StatusCode::OK, s),
        Err(e) => plain(StatusCode::BAD_GATEWAY, format!("fetch failed: {e:?}")),
    }
}

fn plain(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(plain(status, body))
}
