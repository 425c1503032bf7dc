//! The AWS SDK's default credential chain for S3 locations, bridged into
//! object_store: environment variables, the shared config and credentials
//! files and their profiles (`AWS_PROFILE`, or a table's `aws.profile`),
//! `credential_process`, SSO, web identity (IRSA), ECS and instance
//! metadata, in the SDK's order. Tables that carry their own static keys do
//! not use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use tokio::sync::OnceCell;

/// Credentials are fetched again this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The default chain for one profile (None: the SDK's choice, `AWS_PROFILE`
/// or `default`), shared by every table that uses it.
#[derive(Debug)]
pub struct AwsChain {
    profile: Option<String>,
    config: OnceCell<SdkConfig>,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
    source: Mutex<Option<String>>,
}

impl AwsChain {
    /// The process-wide chain for a profile.
    pub fn shared(profile: Option<&str>) -> Arc<AwsChain> {
        static CHAINS: OnceLock<Mutex<HashMap<Option<String>, Arc<AwsChain>>>> = OnceLock::new();
        let mut chains = CHAINS.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
        chains
            .entry(profile.map(str::to_string))
            .or_insert_with(|| {
                Arc::new(AwsChain {
                    profile: profile.map(str::to_string),
                    config: OnceCell::new(),
                    cached: Mutex::new(None),
                    source: Mutex::new(None),
                })
            })
            .clone()
    }

    async fn config(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
                if let Some(p) = &self.profile {
                    loader = loader.profile_name(p);
                }
                loader.load().await
            })
            .await
    }

    /// Where the last credentials came from, in the SDK's words
    /// (`Environment`, `ProfileFile`, `Sso`, `WebIdentityToken`, `Ecs`,
    /// `Ec2InstanceMetadata`, ...), for error messages. Never the secret.
    pub fn describe(&self) -> String {
        let profile = match &self.profile {
            Some(p) => format!(" with profile '{p}'"),
            None => String::new(),
        };
        match self.source.lock().unwrap_or_else(|p| p.into_inner()).as_deref() {
            Some(s) => format!("the AWS default credential chain{profile} (credentials from {s})"),
            None => format!("the AWS default credential chain{profile}"),
        }
    }
}

/// The SDK's provider name for credentials, read from their Debug form (the
/// SDK prints the name and redacts the secret).
fn provider_name(creds: &aws_credential_types::Credentials) -> Option<String> {
    let text = format!("{creds:?}");
    let rest = text.split("provider_name: \"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

#[async_trait::async_trait]
impl CredentialProvider for AwsChain {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if let Some((c, expiry)) = self.cached.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && expiry.is_none_or(|e| e > SystemTime::now() + REFRESH_MARGIN)
        {
            return Ok(c.clone());
        }
        let config = self.config().await;
        let profile = self.profile.clone();
        let no_creds = |detail: String| object_store::Error::Generic {
            store: "S3",
            source: format!(
                "no AWS credentials{}: {detail} (tried environment variables, the shared config and credentials files, \
                 SSO, web identity, ECS and instance metadata; or give the table 'aws.access_key_id' and 'aws.secret_access_key')",
                profile.as_ref().map(|p| format!(" for profile '{p}'")).unwrap_or_default()
            )
            .into(),
        };
        let provider = config.credentials_provider().ok_or_else(|| no_creds("no provider configured".into()))?;
        let creds = provider.provide_credentials().await.map_err(|e| no_creds(error_chain(&e)))?;
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = provider_name(&creds);
        let credential = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        });
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((credential.clone(), creds.expiry()));
        Ok(credential)
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
