//! The kiosk link's QR code (issue 22 item 1): the text given, drawn as an SVG by the
//! `qrcode` crate, so an administrator can point a classroom PC's camera or phone at the
//! admin page instead of typing a long link. It must never store, log or look up the text (it
//! carries a device token).

#[allow(unused_imports)]
use super::*;

/// The longest text drawn (a kiosk link is about 120 bytes).
pub(super) const QR_MAX: usize = 512;

/// The SVG of `text`, or why not.
pub(super) fn qr_svg(text: &str) -> Result<String, ApiError> {
    if text.is_empty() || text.len() > QR_MAX {
        return Err(ApiError::bad_request(
            "bad-query",
            format!("text must be 1 to {QR_MAX} bytes"),
        ));
    }
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| {
        ApiError::bad_request("bad-query", format!("no QR code for this text: {e}"))
    })?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build())
}

/// What to draw.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct QrInput {
    /// The text (1 to 512 bytes): the kiosk link.
    #[serde(default)]
    text: String,
}

#[utoipa::path(
    post, path = "/api/qr.svg", request_body = QrInput,
    responses((status = 200, description = "the QR code as SVG (a POST, so the device token in the link is in no URL or access log)", body = String, content_type = "image/svg+xml"))
)]
pub(super) async fn kiosk_qr(JsonBody(q): JsonBody<QrInput>) -> ApiResult {
    let svg = qr_svg(&q.text)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// Property test: any text either draws or is refused with a 400, never a panic.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_draws_or_is_refused(text in ".{0,600}") {
            match qr_svg(&text) {
                Ok(svg) => {
                    prop_assert!(!text.is_empty() && text.len() <= QR_MAX);
                    prop_assert!(svg.contains("<svg"));
                }
                Err(e) => prop_assert_eq!(e.status, StatusCode::BAD_REQUEST),
            }
        }
    }
}
