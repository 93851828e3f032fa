//! E-mail delivery over SMTP with lettre: STARTTLS (required, the default), implicit TLS, or a
//! plain connection to a local relay; AUTH when the channel has a username. A 2xx answer to the
//! message is a delivery; a refusal or a connection error is tried again.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::show_command;
use crate::alert::{Alert, Delivery, EmailTarget, SmtpTls};

pub async fn send(target: &EmailTarget, alert: &Alert, server_url: &str) -> Delivery {
    match try_send(target, alert, server_url).await {
        Ok(answer) => Delivery::Sent { answer },
        Err(answer) => Delivery::Refused { answer },
    }
}

async fn try_send(target: &EmailTarget, alert: &Alert, server_url: &str) -> Result<String, String> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|error| format!("address {text:?}: {error}"))
    };
    let mut message = Message::builder()
        .from(mailbox(&target.from)?)
        .subject(format!("[shoal] {}", alert.summary()))
        .header(ContentType::TEXT_PLAIN);
    for to in &target.to {
        message = message.to(mailbox(to)?);
    }
    let body = format!(
        "{}\n\njob:       {} (id {})\ninstance:  {}\nattempts:  {}\nreason:    {}\nalert:     {} ({})\n\nSee it with:\n  {}\n",
        alert.summary(),
        alert.job_name,
        alert.job_id,
        alert.instance,
        alert.attempts,
        alert.reason,
        alert.id,
        alert.event.as_str(),
        show_command(alert, server_url),
    );
    let message = message
        .body(body)
        .map_err(|error| format!("cannot build the message: {error}"))?;
    let tls = match target.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters(target)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(target)?),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
        .port(target.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(10)));
    if let Some(username) = &target.username {
        let password = target
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        transport = transport.credentials(Credentials::new(username.clone(), password));
    }
    let response = transport
        .build()
        .send(message)
        .await
        .map_err(|error| format!("SMTP {}:{}: {error}", target.host, target.port))?;
    Ok(format!(
        "SMTP {}: {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    ))
}

fn tls_parameters(target: &EmailTarget) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(target.host.clone());
    if let Some(path) = &target.ca_file {
        let pem = std::fs::read(path).map_err(|error| format!("ca_file {path}: {error}"))?;
        let ca = Certificate::from_pem(&pem).map_err(|error| format!("ca_file {path}: {error}"))?;
        builder = builder.add_root_certificate(ca);
    }
    builder
        .build_rustls()
        .map_err(|error| format!("TLS settings: {error}"))
}
