//! An SDK HTTP client that speaks only HTTP/2 over plain TCP (h2c, "prior
//! knowledge"), as AWS's Kinesis endpoints speak HTTP/2 (over TLS) to an
//! enhanced fan-out consumer. The SDK's default client speaks HTTP/1.1 to
//! an `http://` endpoint; a test with this one covers the HTTP/2 path.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;

/// The HTTP versions of the responses the client received, in order.
pub type Versions = Arc<Mutex<Vec<http::Version>>>;

#[derive(Debug, Clone)]
struct Http2Only {
    client: Client<TcpConnector, SdkBody>,
    versions: Versions,
}

impl HttpConnector for Http2Only {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = this
                .client
                .request(request)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            this.versions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(response.version());
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for Http2Only {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// An HTTP/2-only client for an SDK config (`http_client(...)`), and the
/// versions of the responses it gets: a server that cannot speak HTTP/2
/// fails every call.
pub fn http2_only_client() -> (SharedHttpClient, Versions) {
    let versions = Versions::default();
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(TcpConnector::new());
    let http = Http2Only {
        client,
        versions: versions.clone(),
    };
    (SharedHttpClient::new(http), versions)
}
