//! A stock `wasi:http` component: it exports `wasi:http/incoming-handler`
//! through wstd and knows nothing of Plasmoid. Plasmoid runs it one instance
//! per request, as Spin and `wasmtime serve` do.
//!
//! - `GET /…` answers `hello from wasi:http at <path>`;
//! - `POST /echo` answers the body it got;
//! - `GET /fetch?url=http://…` makes an outgoing request and answers
//!   `<status> <body>`, or 502 with the error (a denial by policy is one);
//! - `GET /fetch-late?url=http://…` does the same with the raw bindings,
//!   writing its (empty) GET body 50 ms after sending the head, when the
//!   host has long sent the head: it answers `<status>`, or 502 with the
//!   error;
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
        "fetch-late" => {
            let Some(url) = param("url") else {
                return text(StatusCode::BAD_REQUEST, "give ?url=http://…".into());
            };
            Ok(match fetch_late(&url).await {
                Ok(status) => plain(StatusCode::OK, status.to_string()),
                Err(e) => plain(StatusCode::BAD_GATEWAY, format!("fetch failed: {e}")),
            })
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

/// An outgoing GET whose body is written and finished 50 ms after its
/// head went out; the response's status.
async fn fetch_late(url: &str) -> Result<u16, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingBody, OutgoingRequest, Scheme};
    let uri: wstd::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let req = OutgoingRequest::new(Fields::new());
    let authority = uri.authority().map(|a| a.as_str());
    let path = uri.path_and_query().map(|p| p.as_str());
    (req.set_scheme(Some(&Scheme::Http)).is_ok()
        && req.set_authority(authority).is_ok()
        && req.set_path_with_query(path).is_ok())
    .then_some(())
    .ok_or("the request was refused")?;
    let body = req.body().map_err(|()| "no request body")?;
    let answer = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    wstd::task::sleep(wstd::time::Duration::from_millis(50)).await;
    let stream = body.write().map_err(|()| "no body stream")?;
    stream
        .blocking_write_and_flush(b"")
        .map_err(|e| format!("writing the body: {e:?}"))?;
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|e| format!("finishing the body: {e:?}"))?;
    wstd::runtime::AsyncPollable::new(answer.subscribe())
        .wait_for()
        .await;
    match answer.get() {
        Some(Ok(Ok(resp))) => Ok(resp.status()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        _ => Err("no answer".into()),
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
