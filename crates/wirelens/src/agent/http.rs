//! The REST API (pktvisor's paths, status codes and bodies) and the OpenAPI document generated
//! from the route annotations. Requests run off the packet path: each takes the agent's lock
//! on a blocking thread, and the workers only see the control messages that result.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;
use utoipa::OpenApi;

use super::state::{Agent, AgentError, Origin, Span};

/// What every request handler shares.
pub struct Shared {
    /// `None` once the agent stopped.
    pub agent: Mutex<Option<Agent>>,
    pub admin: bool,
    /// Bearer token required by admin calls, when set.
    pub token: Option<String>,
    /// Signalled by `DELETE /api/v1/server`.
    pub shutdown: Arc<Notify>,
}

impl Shared {
    pub fn new(agent: Agent, admin: bool, token: Option<String>) -> Self {
        Self {
            agent: Mutex::new(Some(agent)),
            admin,
            token,
            shutdown: Arc::new(Notify::new()),
        }
    }
}

type St = State<Arc<Shared>>;

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({ "error": msg }))
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = match &self {
            AgentError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AgentError::NotFound(_) => StatusCode::NOT_FOUND,
            AgentError::Conflict(_) => StatusCode::CONFLICT,
            AgentError::NoTap(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AgentError::TooEarly(_) => StatusCode::TOO_EARLY,
            AgentError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, &self.to_string())
    }
}

/// Runs `f` on the agent on a blocking thread (snapshots wait for every worker).
async fn with_agent<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&mut Agent) -> Result<T, AgentError> + Send + 'static,
) -> Result<T, AgentError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = s
            .agent
            .lock()
            .map_err(|_| AgentError::Internal("agent state poisoned".into()))?;
        let agent = guard
            .as_mut()
            .ok_or_else(|| AgentError::Internal("agent stopped".into()))?;
        f(agent)
    })
    .await
    .map_err(|e| AgentError::Internal(e.to_string()))?
}

fn ok_json(r: Result<Value, AgentError>) -> Response {
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

fn prom_response(r: Result<String, AgentError>) -> Response {
    match r {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// A period number in a path (`\d+` in pktvisor: anything else is not a route).
fn period(n: &str) -> Result<u32, AgentError> {
    n.parse()
        .map_err(|_| AgentError::NotFound("not found".into()))
}

#[utoipa::path(get, path = "/api/v1/metrics/app", responses((status = 200, description = "agent version and uptime in minutes")))]
async fn app(State(s): St) -> Response {
    ok_json(with_agent(&s, |a| Ok(a.app_json())).await)
}

#[utoipa::path(get, path = "/api/v1/metrics/rates", responses((status = 200, description = "deprecated; use live rates of bucket 0")))]
async fn rates() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"packets": {"in": 0, "out": 0}, "warning": "deprecated: use 'live' data from /api/v1/metrics/bucket/0 instead"}),
    )
}

#[utoipa::path(get, path = "/api/v1/metrics/bucket/{n}", params(("n" = u32, Path, description = "bucket, 0 = live")),
    responses((status = 200, description = "policy `default`, pktvisor 3.0 layout"), (status = 404, description = "no default policy"), (status = 500, description = "bad period")))]
async fn legacy_bucket(State(s): St, Path(n): Path<String>) -> Response {
    let n = match period(&n) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    ok_json(with_agent(&s, move |a| a.legacy_json(Span::Bucket(n))).await)
}

#[utoipa::path(get, path = "/api/v1/metrics/window/{n}", params(("n" = u32, Path, description = "periods merged")),
    responses((status = 200, description = "policy `default`, pktvisor 3.0 layout"), (status = 404, description = "no default policy"), (status = 500, description = "bad period")))]
async fn legacy_window(State(s): St, Path(n): Path<String>) -> Response {
    let n = match period(&n) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    ok_json(with_agent(&s, move |a| a.legacy_json(Span::Window(n))).await)
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text of policy `default`"), (status = 404, description = "no default policy")))]
async fn prom_default(State(s): St) -> Response {
    let r = with_agent(&s, |a| {
        if !a.has_policy("default") {
            return Err(AgentError::NotFound(String::new()));
        }
        a.prometheus("default")
    })
    .await;
    match r {
        Err(AgentError::NotFound(_)) => (StatusCode::NOT_FOUND, "").into_response(),
        other => prom_response(other),
    }
}

#[utoipa::path(get, path = "/api/v1/taps", responses((status = 200, description = "every tap")))]
async fn taps(State(s): St) -> Response {
    ok_json(with_agent(&s, |a| Ok(a.taps_json())).await)
}

#[utoipa::path(get, path = "/api/v1/taps/{name}", params(("name" = String, Path, description = "tap name")),
    responses((status = 200, description = "one tap"), (status = 404, description = "no such tap")))]
async fn tap(State(s): St, Path(name): Path<String>) -> Response {
    ok_json(
        with_agent(&s, move |a| {
            let info = a
                .tap_json(&name)
                .ok_or_else(|| AgentError::NotFound("tap does not exists".into()))?;
            Ok(json!({ name: info }))
        })
        .await,
    )
}

#[utoipa::path(get, path = "/api/v1/policies", responses((status = 200, description = "every policy")))]
async fn policies(State(s): St) -> Response {
    ok_json(with_agent(&s, |a| Ok(a.policies_json())).await)
}

#[utoipa::path(get, path = "/api/v1/policies/{name}", params(("name" = String, Path, description = "policy name")),
    responses((status = 200, description = "one policy"), (status = 404, description = "no such policy")))]
async fn policy_info(State(s): St, Path(name): Path<String>) -> Response {
    ok_json(
        with_agent(&s, move |a| {
            let info = a
                .policy_json(&name)
                .ok_or_else(|| AgentError::NotFound("policy does not exists".into()))?;
            Ok(json!({ name: info }))
        })
        .await,
    )
}

#[utoipa::path(get, path = "/api/v1/policies/{name}/metrics/bucket/{n}",
    params(("name" = String, Path, description = "policy name or `__all`"), ("n" = u32, Path, description = "bucket, 0 = live")),
    responses((status = 200, description = "{policy: {handler: {schema: metrics}}}"), (status = 404, description = "no such policy"), (status = 425, description = "period out of range or not accumulated")))]
async fn policy_bucket(State(s): St, Path((name, n)): Path<(String, String)>) -> Response {
    let n = match period(&n) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    ok_json(with_agent(&s, move |a| a.metrics_json(&name, Span::Bucket(n))).await)
}

#[utoipa::path(get, path = "/api/v1/policies/{name}/metrics/window/{n}",
    params(("name" = String, Path, description = "policy name or `__all`"), ("n" = u32, Path, description = "periods merged, 2..=num_periods")),
    responses((status = 200, description = "{policy: {handler: {schema: metrics}}}"), (status = 404, description = "no such policy"), (status = 425, description = "period out of range")))]
async fn policy_window(State(s): St, Path((name, n)): Path<(String, String)>) -> Response {
    let n = match period(&n) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    ok_json(with_agent(&s, move |a| a.metrics_json(&name, Span::Window(n))).await)
}

#[utoipa::path(get, path = "/api/v1/policies/{name}/metrics/prometheus",
    params(("name" = String, Path, description = "policy name or `__all`")),
    responses((status = 200, description = "Prometheus text, labels handler, policy, tap"), (status = 404, description = "no such policy")))]
async fn policy_prom(State(s): St, Path(name): Path<String>) -> Response {
    prom_response(with_agent(&s, move |a| a.prometheus(&name)).await)
}

/// The body of an admin POST: YAML (`application/x-yaml`) or JSON.
fn body_text(headers: &HeaderMap, body: &Bytes) -> Result<String, AgentError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Err(AgentError::BadRequest(
            "must include Content-Type header".into(),
        ));
    };
    let ct = ct.to_str().unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime != "application/x-yaml" && mime != "application/json" {
        return Err(AgentError::BadRequest("Content-Type not supported".into()));
    }
    String::from_utf8(body.to_vec()).map_err(|_| AgentError::BadRequest("body is not UTF-8".into()))
}

#[utoipa::path(post, path = "/api/v1/taps", request_body(content = String, content_type = "application/x-yaml", description = "`visor.taps` with exactly one tap"),
    responses((status = 201, description = "tap created"), (status = 400, description = "bad content type or body"), (status = 401, description = "missing or wrong bearer token"), (status = 409, description = "name taken")),
    security(("bearer" = [])))]
async fn post_tap(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    let text = match body_text(&headers, &body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let r = with_agent(&s, move |a| {
        let mut doc = a.parse(&text)?;
        if doc.taps.is_empty() {
            return Err(AgentError::BadRequest("no taps found in schema".into()));
        }
        if doc.taps.len() != 1 {
            return Err(AgentError::BadRequest(format!(
                "only a single tap expected but got {}",
                doc.taps.len()
            )));
        }
        let t = doc.taps.remove(0);
        let name = t.name.clone();
        let info = a.add_tap(t, Origin::Api)?;
        Ok(json!({ name: info }))
    })
    .await;
    match r {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(delete, path = "/api/v1/taps/{name}", params(("name" = String, Path, description = "tap name")),
    responses((status = 200, description = "removed"), (status = 401, description = "missing or wrong bearer token"), (status = 404, description = "no such tap")),
    security(("bearer" = [])))]
async fn delete_tap(State(s): St, Path(name): Path<String>) -> Response {
    ok_json(
        with_agent(&s, move |a| {
            a.remove_tap(&name)?;
            Ok(json!({}))
        })
        .await,
    )
}

#[utoipa::path(post, path = "/api/v1/policies", request_body(content = String, content_type = "application/x-yaml", description = "`visor.policies` with exactly one policy"),
    responses((status = 201, description = "policy created"), (status = 400, description = "bad content type or body"), (status = 401, description = "missing or wrong bearer token"),
        (status = 409, description = "name taken"), (status = 422, description = "no tap matches")),
    security(("bearer" = [])))]
async fn post_policy(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    let text = match body_text(&headers, &body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let r = with_agent(&s, move |a| {
        let doc = a.parse(&text)?;
        if doc.policies.is_empty() {
            return Err(AgentError::BadRequest("no policies found in schema".into()));
        }
        if doc.policies.len() != 1 {
            return Err(AgentError::BadRequest(format!(
                "only a single policy expected but got {}",
                doc.policies.len()
            )));
        }
        a.add_policies(doc.policies, Origin::Api)
    })
    .await;
    match r {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(delete, path = "/api/v1/policies/{name}", params(("name" = String, Path, description = "policy name")),
    responses((status = 200, description = "removed"), (status = 401, description = "missing or wrong bearer token"), (status = 404, description = "no such policy")),
    security(("bearer" = [])))]
async fn delete_policy(State(s): St, Path(name): Path<String>) -> Response {
    ok_json(
        with_agent(&s, move |a| {
            a.remove_policy(&name)?;
            Ok(json!({}))
        })
        .await,
    )
}

#[utoipa::path(delete, path = "/api/v1/server", responses((status = 200, description = "the agent stops"), (status = 401, description = "missing or wrong bearer token")),
    security(("bearer" = [])))]
async fn delete_server(State(s): St) -> Response {
    s.shutdown.notify_one();
    json_response(StatusCode::OK, &json!({}))
}

#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "this document")))]
async fn openapi() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null),
    )
}

/// Admin calls need `Authorization: Bearer <token>` when a token is configured.
async fn require_token(State(s): St, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.as_bytes())) {
            // Read the (bounded) body first: closing a connection with unread data resets
            // it, and the client could lose the 401.
            let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, generated from the route annotations above.
#[derive(OpenApi)]
#[openapi(
    info(title = "wirelens agent REST API", description = "pktvisor-compatible metrics, taps and policies"),
    paths(app, rates, legacy_bucket, legacy_window, prom_default, taps, tap, policies, policy_info,
        policy_bucket, policy_window, policy_prom, post_tap, delete_tap, post_policy, delete_policy,
        delete_server, openapi),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// Every route; admin routes only with `--admin-api` (otherwise they are not found: 404).
pub fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route("/api/v1/metrics/app", get(app))
        .route("/api/v1/metrics/rates", get(rates))
        .route("/api/v1/metrics/bucket/{n}", get(legacy_bucket))
        .route("/api/v1/metrics/window/{n}", get(legacy_window))
        .route("/metrics", get(prom_default))
        .route("/api/v1/taps", get(taps))
        .route("/api/v1/taps/{name}", get(tap))
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/policies/{name}", get(policy_info))
        .route(
            "/api/v1/policies/{name}/metrics/bucket/{n}",
            get(policy_bucket),
        )
        .route(
            "/api/v1/policies/{name}/metrics/window/{n}",
            get(policy_window),
        )
        .route(
            "/api/v1/policies/{name}/metrics/prometheus",
            get(policy_prom),
        )
        .route("/api/v1/openapi.json", get(openapi));
    if shared.admin {
        let admin = Router::new()
            .route("/api/v1/taps", post(post_tap))
            .route("/api/v1/taps/{name}", delete(delete_tap))
            .route("/api/v1/policies", post(post_policy))
            .route("/api/v1/policies/{name}", delete(delete_policy))
            .route("/api/v1/server", delete(delete_server))
            .route_layer(middleware::from_fn_with_state(
                shared.clone(),
                require_token,
            ));
        r = r.merge(admin);
    }
    // A method a path does not serve is not found, as in pktvisor (not 405).
    r.fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/metrics/app",
            "/api/v1/policies/{name}/metrics/window/{n}",
            "/api/v1/taps/{name}",
            "/metrics",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        assert!(paths["/api/v1/policies"]["post"]["responses"]["422"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
