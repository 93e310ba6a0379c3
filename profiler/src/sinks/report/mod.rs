//! The final report: its structure and JSON (`model`), its text (`text`), and the choice
//! between them. Pure.

pub mod model;
pub mod text;

pub use model::*;
pub use text::to_text;

/// How the final report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Text,
    /// The schema in docs/report-schema.md.
    Json,
}

/// The report in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => to_text(report),
        Format::Json => to_json(report),
    }
}
