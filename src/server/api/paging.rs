//! How the admin API's lists page: a `limit` (with a default and a maximum per list) and an
//! id cursor. A page that has more after it says where in a `Link: <…>; rel="next"` header
//! (RFC 8288), the URL of the next page with the same filters; the body stays a JSON array, so
//! a caller that reads only the body still gets the first page as before. Ids only grow, so a
//! cursor stays right while jobs and instances are added.

use axum::http::header::LINK;
use axum::http::{HeaderMap, HeaderValue};

use super::error::ApiError;

/// The page size asked for, or `default`; refused outside `1..=max`, naming the field.
pub fn limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match asked.unwrap_or(default) {
        0 => Err(ApiError::invalid(
            "limit",
            format!("must be 1–{max} (the page size; follow the Link header for more)"),
        )),
        limit if limit > max => Err(ApiError::invalid(
            "limit",
            format!(
                "{limit} is over the most one page holds, {max}; ask for less and follow the \
                 Link header (rel=\"next\") to the next page"
            ),
        )),
        limit => Ok(limit),
    }
}

/// Headers of a page: a `Link` to the next page when there is one. `params` are the query of
/// the next page, in order, cursor included; `None` values are left out.
pub fn next_link(path: &str, next: bool, params: &[(&str, Option<String>)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if !next {
        return headers;
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let link = format!("<{path}?{}>; rel=\"next\"", query.finish());
    // Built from our own path and percent-encoded parameters: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&link) {
        headers.insert(LINK, value);
    }
    headers
}
