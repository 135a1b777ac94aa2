//! Tests of the ProxyLogon checks.
use super::*;

#[test]
fn ssrf_classification() {
    assert_eq!(
        classify_ssrf("localhost", "ecp/default.flt?", "/owa/auth/x.js", Some(500)),
        SsrfClass::Scan
    );
    assert_eq!(
        classify_ssrf(
            "c0ffee.oast.fun",
            "ecp/default.flt?",
            "/owa/auth/x.js",
            Some(500)
        ),
        SsrfClass::Scan
    );
    assert_eq!(
        classify_ssrf(
            "a]@ex01.contoso.com:444",
            "autodiscover/autodiscover.xml?#",
            "/ecp/y.js",
            Some(200)
        ),
        SsrfClass::Attempt
    );
    assert_eq!(
        classify_ssrf(
            "a]@ex01.contoso.com:444",
            "ecp/proxyLogon.ecp?#",
            "/ecp/y.js",
            Some(241)
        ),
        SsrfClass::Success
    );
    assert_eq!(
        classify_ssrf(
            "a]@ex01.contoso.com:444",
            "ecp/proxyLogon.ecp?#",
            "/ecp/y.js",
            Some(500)
        ),
        SsrfClass::Attempt
    );
}

#[test]
fn short_js_names() {
    assert!(short_ecp_js("/ecp/y.js"));
    assert!(short_ecp_js("/ECP/abc.JS"));
    assert!(!short_ecp_js("/ecp/abcd.js"));
    assert!(!short_ecp_js("/ecp/DDI/x.js"));
}

#[test]
fn markup_vs_url() {
    assert!(has_markup(
        r#"http://f/<script language="JScript" runat="server">function Page_Load(){}</script>"#
    ));
    assert!(!has_markup("https://mail.contoso.com/OAB"));
    let p = ecp_params(
        "S:CMD=Set-OabVirtualDirectory.ExternalUrl='https://mail.contoso.com/OAB'.InternalUrl='https://ex01/OAB';S:X=1",
        "Url",
    );
    assert_eq!(
        p,
        vec![
            ("ExternalUrl", "https://mail.contoso.com/OAB"),
            ("InternalUrl", "https://ex01/OAB")
        ]
    );
}

#[test]
fn web_roots() {
    assert!(in_web_root(
        r"\\127.0.0.1\c$\inetpub\wwwroot\aspnet_client\shell.aspx"
    ));
    assert!(in_web_root(
        r"C:\Program Files\Microsoft\Exchange Server\V15\FrontEnd\HttpProxy\owa\auth\x.aspx"
    ));
    assert!(!in_web_root(
        r"C:\Program Files\Microsoft\Exchange Server\V15\ClientAccess\OAB\Temp\x.xml"
    ));
}
