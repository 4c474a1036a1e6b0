//! HTTP for particles: the requests the node's listener routes to a
//! particle (`Message::Http`) and the answer it gives with [`respond`].
//!
//! A `#[gen_server]` answers with `fn handle_http(&mut self, req:
//! HttpRequest) -> HttpResponse`; a function particle takes
//! `Message::Http(req)` from `recv` and calls `respond(&req, response)`.
//! Each request gets one answer; a particle that ends first gives the
//! client a 500, one that takes longer than the route's timeout a 504.

use crate::bindings::plasmoid::runtime::http as wit;
pub use crate::bindings::plasmoid::runtime::http::{HttpRequest, HttpResponse, RespondError};

/// Answer `request` (once).
pub fn respond(request: &HttpRequest, response: HttpResponse) -> Result<(), RespondError> {
    wit::respond(request.ref_, &response)
}

impl HttpRequest {
    /// The first value of header `name` (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not valid JSON: {e}"))
    }

    /// The value of query parameter `name` (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

impl HttpResponse {
    /// An empty response with `status`.
    pub fn status(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `status` with a `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// `status` with `value` as a JSON body.
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::status(status)
                .header("content-type", "application/json")
                .body(body),
            Err(e) => Self::text(500, format!("the response could not be encoded: {e}")),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

impl From<RespondError> for String {
    fn from(e: RespondError) -> String {
        match e {
            RespondError::UnknownRef => "unknown-ref".into(),
            RespondError::Invalid(why) => format!("invalid response: {why}"),
        }
    }
}
