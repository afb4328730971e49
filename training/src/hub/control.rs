//! The control endpoints under `/_hub/`, through which a test (or a browser test
//! page, hence CORS) changes faults and reads the request log at run time.

use super::http::{Request, Response};
use super::route::preflight;
use super::{parse_faults, HubError, RequestRecord, State};

const FAULTS: &str = "/_hub/faults";
const LOG: &str = "/_hub/log";

/// Whether a request path belongs to the control endpoints.
pub(crate) fn is_control(path: &str) -> bool {
    path == "/_hub" || path.starts_with("/_hub/")
}

/// Answers a control request.
pub(crate) fn handle(state: &State, request: &Request, path: &str) -> Response {
    match (path, request.method.as_str()) {
        (_, "OPTIONS") => preflight(request),
        (FAULTS, "GET" | "HEAD") => faults(state),
        (FAULTS, "POST" | "PUT") => match read_faults(&request.body) {
            Ok(list) => {
                state.faults.replace(list);
                faults(state)
            }
            Err(e) => Response::error(400, &e.to_string()),
        },
        (FAULTS, "DELETE") => {
            state.faults.replace(Vec::new());
            faults(state)
        }
        (LOG, "GET" | "HEAD") => Response::json(200, &state.log.snapshot()),
        (LOG, "DELETE") => {
            state.log.clear();
            Response::json(200, &Vec::<RequestRecord>::new())
        }
        (FAULTS | LOG, _) => Response::error(405, "method not allowed")
            .with_header("Allow", "GET, HEAD, POST, DELETE, OPTIONS"),
        _ => Response::error(
            404,
            "unknown control endpoint: use /_hub/faults or /_hub/log",
        ),
    }
}

fn read_faults(body: &[u8]) -> Result<Vec<super::Fault>, HubError> {
    let text = std::str::from_utf8(body).map_err(|_| HubError::FaultList {
        reason: "body is not UTF-8".to_string(),
    })?;
    parse_faults(text)
}

fn faults(state: &State) -> Response {
    Response::json(200, &serde_json::json!({ "faults": state.faults.list() }))
}
