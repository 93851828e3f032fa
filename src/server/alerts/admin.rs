//! What an operator can do to alert channels and see of alerts: the service methods behind the
//! API routes. Changes are commands proposed to the engine; reads go to the store. Channels
//! leave here redacted: no secret is ever answered.

use crate::alert::spec::ChannelSpec;
use crate::alert::{Alert, ChannelDefinition};
use crate::server::command::Command;
use crate::server::machine::Response;
use crate::server::service::{Result, Service, ServiceError, unexpected};
use crate::server::store::AlertFilter;

impl Service {
    /// Creates or replaces a channel by name. Returns it redacted, and whether it was created.
    pub fn put_channel(&self, spec: &ChannelSpec) -> Result<(ChannelDefinition, bool)> {
        let def = spec.validate()?;
        let existed = self.store().read()?.channel(&def.name)?.is_some();
        match self.engine().propose(Command::PutChannel { def })? {
            Response::Channel(channel) => Ok((channel.redacted(), !existed)),
            other => Err(unexpected(other)),
        }
    }

    pub fn delete_channel(&self, name: &str) -> Result<ChannelDefinition> {
        match self.engine().propose(Command::DeleteChannel {
            name: name.to_string(),
        })? {
            Response::Channel(channel) => Ok(channel.redacted()),
            other => Err(unexpected(other)),
        }
    }

    pub fn channels(&self) -> Result<Vec<ChannelDefinition>> {
        Ok(self
            .store()
            .read()?
            .channels()?
            .iter()
            .map(ChannelDefinition::redacted)
            .collect())
    }

    pub fn channel(&self, name: &str) -> Result<ChannelDefinition> {
        self.store()
            .read()?
            .channel(name)?
            .map(|c| c.redacted())
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "channel {name:?} (`shoal channel list` shows them)"
                ))
            })
    }

    /// Alerts newest first; `job` by name or id.
    pub fn alerts(
        &self,
        statuses: Vec<String>,
        job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Alert>> {
        let job_id = job.map(|key| self.job(key).map(|job| job.id)).transpose()?;
        Ok(self.store().read()?.alerts(&AlertFilter {
            statuses,
            job_id,
            limit,
        })?)
    }
}
