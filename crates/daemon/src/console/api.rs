//! The console's HTTP side: the page and its assets (compiled into the
//! binary), `/api/events` (server-sent events: everything once, then what
//! changed each `push_interval`), and `/api/unicorn?name=...` (its minutes
//! and alarm history: two DynamoDB Queries on its key).
//!
//! Every answer carries a Content-Security-Policy that allows scripts and
//! styles from this server only: no inline script can run, and the page
//! writes data as text, never as markup. A bad request is a 4xx with the
//! reason as plain text.

use std::convert::Infallible;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use wildrydes_alarm::history::AlarmHistory;
use wildrydes_core::UnicornName;

use super::{ConsoleConfig, Live};

const INDEX: &str = include_str!("../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../assets/console/console.js");
const STYLE: &str = include_str!("../../assets/console/console.css");

/// Only this server's scripts, styles and connections.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Most minutes one unicorn's chart asks for: a day.
const MAX_MINUTES: i32 = 1440;
/// Alarm transitions shown per unicorn.
const HISTORY: i32 = 100;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// What the readers know.
    pub live: Arc<Live>,
    /// For one unicorn's Queries.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Table names and intervals.
    pub config: ConsoleConfig,
}

/// The console's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/events", get(events))
        .route("/api/unicorn", get(unicorn))
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "no such page: the console is at /") })
        .layer(axum::middleware::map_response(secure))
        .with_state(state)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A refusal with its reason.
fn refuse(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut reason = reason.into();
    reason.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        reason,
    )
        .into_response()
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Everything, then what changed every `push_interval`.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let interval = state.config.push_interval;
    // The first event is everything; each next one what changed after
    // the counter the previous one carried (0: nothing had yet, so
    // everything is new).
    let stream =
        futures::stream::unfold((state.live, None::<u64>), move |(live, sent)| async move {
            if sent.is_some() {
                tokio::time::sleep(interval).await;
            }
            let update = live.since(sent.unwrap_or(0));
            let counter = update.counter;
            let event = Event::default()
                .event(if sent.is_none() { "snapshot" } else { "update" })
                .json_data(&update)
                .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
            Some((Ok(event), (live, Some(counter))))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Debug, Deserialize)]
struct UnicornQuery {
    name: Option<String>,
    minutes: Option<String>,
}

/// One minute of one unicorn, for its chart.
#[derive(Debug, Serialize)]
struct Minute {
    /// Epoch ms of the minute's start.
    t: i64,
    distance: i16,
    magic: [i16; 2],
    health: [i16; 2],
}

#[derive(Debug, Serialize)]
struct UnicornAnswer {
    name: String,
    /// Oldest first.
    minutes: Vec<Minute>,
    /// Newest first.
    transitions: Vec<wildrydes_alarm::history::Transition>,
}

async fn unicorn(State(state): State<AppState>, Query(query): Query<UnicornQuery>) -> Response {
    let Some(raw) = query.name else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "name is missing: ask for /api/unicorn?name=Shadowfax",
        );
    };
    let name = match UnicornName::new(&raw) {
        Ok(name) => name,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("name {e}: a unicorn's name is 1 to 32 characters"),
            );
        }
    };
    let minutes = match query.minutes.as_deref().map(str::parse::<i32>) {
        None => 120,
        Some(Ok(m)) if (1..=MAX_MINUTES).contains(&m) => m,
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("minutes must be a whole number from 1 to {MAX_MINUTES}"),
            );
        }
    };
    let items = state
        .dynamodb
        .query()
        .table_name(&state.config.sensor_table)
        .key_condition_expression("#n = :n")
        .expression_attribute_names("#n", "Name")
        .expression_attribute_values(":n", AttributeValue::S(name.as_str().to_owned()))
        .scan_index_forward(false)
        .limit(minutes)
        .send()
        .await;
    let items = match items {
        Ok(out) => out.items.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(unicorn = %name, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "cannot query the unicorn's minutes");
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!(
                    "cannot read {}'s minutes from {}; see the console's log",
                    name, state.config.sensor_table
                ),
            );
        }
    };
    let mut minutes: Vec<Minute> = items
        .iter()
        .filter_map(|item| wildrydes_core::item::item_to_aggregate(item).ok())
        .map(|a| Minute {
            t: a.status_time.epoch_millis(),
            distance: a.distance,
            magic: [a.min_magic_points, a.max_magic_points],
            health: [a.min_health_points, a.max_health_points],
        })
        .collect();
    minutes.reverse();
    let history = AlarmHistory::new(
        state.dynamodb.clone(),
        &state.config.alarm_table,
        &state.config.history_table,
    );
    let transitions = match history.transitions(&name, HISTORY).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(unicorn = %name, error = %e, "cannot query the unicorn's alarm history");
            Vec::new()
        }
    };
    axum::Json(UnicornAnswer {
        name: name.as_str().to_owned(),
        minutes,
        transitions,
    })
    .into_response()
}
