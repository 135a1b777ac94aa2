//! Errors of the store and of the API, and how each becomes an HTTP status.
//!
//! A caller outside an object's organisation gets `NotFound`, exactly as for an id that does not
//! exist: a different answer would tell org A that org B has a server with that id.

/// Why a store or API operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token, or a token that is unknown or revoked.
    #[error("missing, unknown or revoked API token")]
    Unauthorized,
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// No such object, or not one the caller may see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is not understood (bad parameter, bad scope entry, bad JSON body).
    #[error("{0}")]
    BadRequest(String),
    /// An upload that is not a valid document of its kind; nothing was stored.
    #[error("{0}")]
    Invalid(String),
    /// The object conflicts with an existing one (an organisation name taken).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the server accepts.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The client did not send its body in time.
    #[error("request body not received within {0} seconds")]
    Timeout(u64),
    /// The whole request took longer than the server allows.
    #[error("request not completed within {0} seconds")]
    RequestTimeout(u64),
    /// Too many failed logins: try again after this many seconds at most.
    #[error("too many failed logins: try again in {} minutes", .0 / 60)]
    TooManyAttempts(i64),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthorized => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::BadRequest(_) => 400,
            Error::Invalid(_) => 422,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::Timeout(_) | Error::RequestTimeout(_) => 408,
            Error::TooManyAttempts(_) => 429,
            Error::Db(_) | Error::Migrate(_) => 500,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not-found",
            Error::BadRequest(_) => "bad-request",
            Error::Invalid(_) => "invalid-document",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too-large",
            Error::Timeout(_) | Error::RequestTimeout(_) => "timeout",
            Error::TooManyAttempts(_) => "too-many-attempts",
            Error::Db(_) | Error::Migrate(_) => "internal",
        }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
