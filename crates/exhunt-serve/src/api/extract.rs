//! What every API handler takes from a request, as axum extractors: the caller (from the
//! bearer token), the id in the path, the list filter, and the body, read within the size and
//! time limits before it is parsed. A handler names what it needs in its arguments; the
//! caller is authenticated before anything else is read (the first argument after the state).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, App, Arc, Bytes, Error, Filter, caller, json_body, read_body};
use crate::tenancy::{Caller, Role};

/// The authenticated caller.
pub(super) struct Auth(pub Caller);

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let c = caller(app, &parts.headers).await?;
        crate::server::Seen::note(&parts.extensions, &c);
        Ok(Auth(c))
    }
}

/// The authenticated caller, at least an uploader: refused before the body is read.
pub(super) struct Uploader(pub Caller);

impl FromRequestParts<Arc<App>> for Uploader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let c = caller(app, &parts.headers).await?;
        crate::server::Seen::note(&parts.extensions, &c);
        c.require(Role::Uploader)?;
        Ok(Uploader(c))
    }
}

/// The numeric id in the path (`/…/{id}`).
pub(super) struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<i64>::from_request_parts(parts, state)
            .await
            .map(|Path(i)| Id(i))
            .map_err(|_| {
                ApiError(Error::BadRequest(
                    "the id in the path is not a number".into(),
                ))
            })
    }
}

/// Query parameters (`Filter` for lists).
pub(super) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Params(t))
            .map_err(|e| {
                ApiError(Error::BadRequest(format!(
                    "query parameters: {}",
                    e.body_text()
                )))
            })
    }
}

/// The list filter.
pub(super) type Filt = Params<Filter>;

/// The body, whole, within the size and time limits.
pub(super) struct Raw(pub Bytes);

impl FromRequest<Arc<App>> for Raw {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        Ok(Raw(read_body(app, &parts.headers, body).await?))
    }
}

/// The body as JSON of `T` (a 400 naming what is wrong otherwise).
pub(super) struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        let Raw(b) = Raw::from_request(req, app).await?;
        Ok(Json(json_body(&b)?))
    }
}
