//! The operators' notification template pages: list, create, edit (with the placeholders
//! named), delete; the built-in template is shown read-only. Every form carries the session's
//! CSRF token.

use axum::routing::{get, post};

use super::auth::{TEMPLATE_FORM_LIMIT, csrf_field, form_session, read_form_within};
use super::notify_pages::id_or_error;
use super::*;
use crate::templates::{PLACEHOLDERS, TemplateInput};

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/templates", get(templates_page).post(create_template))
        .route("/templates/{id}", get(template_page).post(update_template))
        .route("/templates/{id}/delete", post(delete_template))
        // The dashboard's 16 KiB limit would refuse an edit of a template the API accepted
        // (this layer, nearer the handlers, takes precedence).
        .layer(axum::extract::DefaultBodyLimit::max(TEMPLATE_FORM_LIMIT))
}

fn template_form(action: &str, csrf: &str, t: &TemplateInput, button: &str) -> String {
    format!(
        "<form method=post action=\"{}\" id=template>{}<p><label>Name <input name=name required maxlength=100 value=\"{}\"></label></p><p><label>Subject <input name=subject required size=90 value=\"{}\"></label></p><p><label>Body<br><textarea name=body rows=18 cols=90 required>{}</textarea></label></p><p><button>{button}</button></p></form><p>Placeholders: {}</p>",
        esc(action),
        csrf_field(csrf),
        esc(&t.name),
        esc(&t.subject),
        esc(&t.body),
        PLACEHOLDERS
            .iter()
            .map(|(k, what)| format!("<code>{{{k}}}</code> ({})", esc(what)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

async fn templates_page(State(web): Shared, Signed(c, csrf): Signed) -> Response {
    let list = match web.list_templates(&c).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let mut body =
        String::from("<table id=templates><tr><th>Name</th><th>Subject</th><th>Changed</th></tr>");
    for t in &list {
        let _ = write!(
            body,
            "<tr><td><a href=\"/templates/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            t.id,
            esc(&t.name),
            esc(&t.subject),
            esc(&t.updated)
        );
    }
    body.push_str("</table><h2>New template</h2>");
    body.push_str(&template_form(
        "/templates",
        &csrf,
        &TemplateInput {
            name: String::new(),
            subject: crate::templates::DEFAULT_SUBJECT.into(),
            body: crate::templates::DEFAULT_BODY.into(),
        },
        "Create",
    ));
    html(
        StatusCode::OK,
        page("Notification templates", Some((&c, &csrf)), &body),
    )
}

#[derive(Deserialize)]
struct TemplateForm {
    csrf: Option<String>,
    name: String,
    subject: String,
    body: String,
}

async fn create_template(
    State(web): Shared,
    h: HeaderMap,
    form: Result<Form<TemplateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form_within(form, TEMPLATE_FORM_LIMIT) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, _) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let input = TemplateInput {
        name: f.name,
        subject: f.subject,
        body: f.body,
    };
    match web.create_template(&c, &input).await {
        Ok(t) => secure_headers(Redirect::to(&format!("/templates/{}", t.id)).into_response()),
        Err(e) => error_page(&e),
    }
}

async fn template_page(
    State(web): Shared,
    Signed(c, csrf): Signed,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let id = match id_or_error(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    let t = match web.get_template(&c, id).await {
        Ok(t) => t,
        Err(e) => return error_page(&e),
    };
    let input = TemplateInput {
        name: t.name.clone(),
        subject: t.subject.clone(),
        body: t.body.clone(),
    };
    let body = if id == 0 {
        format!(
            "<p>The built-in template (read only; copy it into a new one to change it).</p><p><strong>Subject:</strong> {}</p><pre>{}</pre>",
            esc(&t.subject),
            esc(&t.body)
        )
    } else {
        format!(
            "{}<form method=post action=\"/templates/{id}/delete\">{}<button>Delete</button></form>",
            template_form(&format!("/templates/{id}"), &csrf, &input, "Save"),
            csrf_field(&csrf)
        )
    };
    html(StatusCode::OK, page(&t.name, Some((&c, &csrf)), &body))
}

async fn update_template(
    State(web): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    form: Result<Form<TemplateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form_within(form, TEMPLATE_FORM_LIMIT) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, _) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = match id_or_error(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    let input = TemplateInput {
        name: f.name,
        subject: f.subject,
        body: f.body,
    };
    match web.update_template(&c, id, &input).await {
        Ok(_) => secure_headers(Redirect::to(&format!("/templates/{id}")).into_response()),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn delete_template(
    State(web): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form_within(form, TEMPLATE_FORM_LIMIT) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, _) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = match id_or_error(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    match web.delete_template(&c, id).await {
        Ok(()) => secure_headers(Redirect::to("/templates").into_response()),
        Err(e) => error_page(&e),
    }
}
