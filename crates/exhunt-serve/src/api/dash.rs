//! API endpoints of the dashboard's features: dashboard users, notification templates and
//! escalation (operators).

use axum::routing::{get, post};

use super::*;
use crate::templates::TemplateInput;
use crate::users::UserInput;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user).delete(disable_user))
        .route(
            "/api/v1/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/templates/{id}",
            get(get_template)
                .put(update_template)
                .delete(delete_template),
        )
        .route("/api/v1/notifications/escalate", post(escalate_now))
}

async fn list_users(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_users(&c, &f).await?)
}

async fn create_user(State(app): Shared, Auth(c): Auth, Json(input): Json<UserInput>) -> ApiResult {
    ok(
        StatusCode::CREATED,
        &app.store.create_user(&c, &input).await?,
    )
}

async fn get_user(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_user(&c, i).await?)
}

async fn disable_user(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.disable_user(&c, i).await?)
}

async fn list_templates(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_templates(&c).await?)
}

async fn create_template(
    State(app): Shared,
    Auth(c): Auth,
    Json(input): Json<TemplateInput>,
) -> ApiResult {
    ok(
        StatusCode::CREATED,
        &app.store.create_template(&c, &input).await?,
    )
}

async fn get_template(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_template(&c, i).await?)
}

async fn update_template(
    State(app): Shared,
    Auth(c): Auth,
    Id(i): Id,
    Json(input): Json<TemplateInput>,
) -> ApiResult {
    ok(
        StatusCode::OK,
        &app.store.update_template(&c, i, &input).await?,
    )
}

async fn delete_template(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    app.store.delete_template(&c, i).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Runs the escalation now (operators), with the server's policy.
async fn escalate_now(State(app): Shared, Auth(c): Auth) -> ApiResult {
    c.require(Role::Operator)?;
    let n = app
        .store
        .escalate(chrono::Utc::now(), app.cfg.escalation.after)
        .await?;
    ok(StatusCode::OK, &json!({"escalated": n}))
}
