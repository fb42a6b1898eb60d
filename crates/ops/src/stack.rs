//! CloudFormation as deploy and destroy use it: a stack's state, change sets
//! (created, waited for, shown, executed or thrown away), stack events
//! printed as they arrive, and bounded waits for a stack to settle.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};

use crate::aws_error;

/// First pause between two polls; doubled up to [`MAX_POLL`]. Short, because
/// a local emulator answers at once; AWS takes seconds per step anyway.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// Longest pause between two polls (DescribeStacks and DescribeStackEvents
/// are throttled per account).
const MAX_POLL: Duration = Duration::from_secs(5);

/// What CloudFormation knows of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackInfo {
    /// Its ARN, which names it even after deletion.
    pub id: String,
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, ...
    pub status: String,
    /// Its outputs by key.
    pub outputs: BTreeMap<String, String>,
    /// Its parameters by key.
    pub parameters: BTreeMap<String, String>,
}

impl StackInfo {
    /// Whether an operation is running on it.
    pub fn is_busy(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS") && self.status != "REVIEW_IN_PROGRESS"
    }
}

/// The stack `name_or_id`, or `None` if there is no such stack.
pub async fn describe(cfn: &Client, name_or_id: &str) -> anyhow::Result<Option<StackInfo>> {
    let answer = match cfn.describe_stacks().stack_name(name_or_id).send().await {
        Ok(answer) => answer,
        Err(err)
            if err.as_service_error().is_some_and(|e| {
                aws_sdk_cloudformation::error::ProvideErrorMetadata::message(e)
                    .is_some_and(|m| m.contains("does not exist"))
            }) =>
        {
            return Ok(None);
        }
        Err(err) => {
            return Err(aws_error::explain(
                err,
                format!("cannot look up stack {name_or_id}"),
            ));
        }
    };
    let Some(stack) = answer.stacks().first() else {
        return Ok(None);
    };
    let pairs = |items: Vec<(Option<&str>, Option<&str>)>| {
        items
            .into_iter()
            .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
            .collect()
    };
    Ok(Some(StackInfo {
        id: stack.stack_id().unwrap_or(name_or_id).to_owned(),
        status: stack
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        outputs: pairs(
            stack
                .outputs()
                .iter()
                .map(|o| (o.output_key(), o.output_value()))
                .collect(),
        ),
        parameters: pairs(
            stack
                .parameters()
                .iter()
                .map(|p| (p.parameter_key(), p.parameter_value()))
                .collect(),
        ),
    }))
}

/// The physical ids of a stack's resources, by logical id.
pub async fn resources(cfn: &Client, stack: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    let mut pages = cfn
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| aws_error::explain(e, format!("cannot list the resources of {stack}")))?;
        for resource in page.stack_resource_summaries() {
            if let (Some(logical), Some(physical)) = (
                resource.logical_resource_id(),
                resource.physical_resource_id(),
            ) {
                found.insert(logical.to_owned(), physical.to_owned());
            }
        }
    }
    Ok(found)
}

/// One resource change a change set would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// `Add`, `Modify`, `Remove`, ...
    pub action: String,
    /// The resource's logical id.
    pub logical_id: String,
    /// Its type, e.g. `AWS::Lambda::EventSourceMapping`.
    pub resource_type: String,
    /// For a `Modify`: `True`, `False` or `Conditional`.
    pub replacement: Option<String>,
}

impl fmt::Display for PlannedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {:<36} {}",
            self.action, self.resource_type, self.logical_id
        )?;
        match self.replacement.as_deref() {
            Some("True") => write!(f, " (replaced)"),
            Some("Conditional") => write!(f, " (may be replaced)"),
            _ => Ok(()),
        }
    }
}

/// A change set, created and settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSet {
    /// CloudFormation found nothing to change (the change set was deleted).
    NoChanges,
    /// Ready to execute.
    Ready {
        /// Its ARN.
        id: String,
        /// What executing it would do.
        changes: Vec<PlannedChange>,
    },
}

/// Creates a change set of `kind` for `stack` and waits until it is ready
/// (or found to change nothing, in which case it is deleted).
pub async fn create_change_set(
    cfn: &Client,
    stack: &str,
    kind: ChangeSetType,
    template: &str,
    parameters: &[(&str, String)],
    deadline: Instant,
) -> anyhow::Result<ChangeSet> {
    let name = format!(
        "deploy-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let created = cfn
        .create_change_set()
        .stack_name(stack)
        .change_set_name(&name)
        .change_set_type(kind.clone())
        .template_body(template)
        .set_parameters(Some(
            parameters
                .iter()
                .map(|(key, value)| {
                    Parameter::builder()
                        .parameter_key(*key)
                        .parameter_value(value)
                        .build()
                })
                .collect(),
        ))
        // The template creates IAM roles (with generated names).
        .capabilities(Capability::CapabilityIam)
        .description("cargo xtask deploy")
        .send()
        .await
        .map_err(|e| {
            aws_error::explain(e, format!("cannot create a change set for stack {stack}"))
        })?;
    let id = created.id().unwrap_or(&name).to_owned();

    let mut pause = FIRST_POLL;
    loop {
        let described = cfn
            .describe_change_set()
            .change_set_name(&id)
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| aws_error::explain(e, format!("cannot read change set {name}")))?;
        let status = described
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        match status.as_str() {
            "CREATE_COMPLETE" => {
                let changes = all_changes(cfn, stack, &id).await?;
                return Ok(ChangeSet::Ready { id, changes });
            }
            "FAILED" => {
                let reason = described.status_reason().unwrap_or_default().to_owned();
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    delete_change_set(cfn, stack, &id).await?;
                    return Ok(ChangeSet::NoChanges);
                }
                anyhow::bail!("CloudFormation refused the change set for stack {stack}: {reason}");
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "change set {name} of stack {stack} is still {status}: gave up waiting; look at it in the CloudFormation console"
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

async fn all_changes(cfn: &Client, stack: &str, id: &str) -> anyhow::Result<Vec<PlannedChange>> {
    let mut changes = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = cfn
            .describe_change_set()
            .change_set_name(id)
            .stack_name(stack)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| aws_error::explain(e, "cannot read the change set's changes"))?;
        changes.extend(
            page.changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(|c| PlannedChange {
                    action: c
                        .action()
                        .map(|a| a.as_str().to_owned())
                        .unwrap_or_default(),
                    logical_id: c.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: c.resource_type().unwrap_or_default().to_owned(),
                    replacement: c.replacement().map(|r| r.as_str().to_owned()),
                }),
        );
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(changes),
        }
    }
}

/// Deletes the change set `id` of `stack`.
pub async fn delete_change_set(cfn: &Client, stack: &str, id: &str) -> anyhow::Result<()> {
    cfn.delete_change_set()
        .change_set_name(id)
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| aws_error::explain(e, "cannot delete the change set"))?;
    Ok(())
}

/// Executes the change set `id` of `stack`.
pub async fn execute_change_set(cfn: &Client, stack: &str, id: &str) -> anyhow::Result<()> {
    cfn.execute_change_set()
        .change_set_name(id)
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| aws_error::explain(e, format!("cannot execute the change set of {stack}")))?;
    Ok(())
}

/// Deletes `stack` (its resources, except those the template retains).
pub async fn delete_stack(cfn: &Client, stack: &str) -> anyhow::Result<()> {
    cfn.delete_stack()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| aws_error::explain(e, format!("cannot delete stack {stack}")))?;
    Ok(())
}

/// Prints a stack's new events as they arrive and keeps them.
#[derive(Debug)]
pub struct EventWatcher {
    stack_id: String,
    /// The newest event already seen: events before it are not new.
    newest_seen: Option<String>,
    /// Every new event, as printed.
    pub lines: Vec<String>,
    /// New events that report a failure, with their reason.
    pub failures: Vec<String>,
}

impl EventWatcher {
    /// Starts watching `stack_id` (its ARN, which also finds a deleted
    /// stack): the events it has now are old.
    pub async fn start(cfn: &Client, stack_id: &str) -> anyhow::Result<Self> {
        let newest = cfn
            .describe_stack_events()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(|e| aws_error::explain(e, "cannot read the stack's events"))?
            .stack_events()
            .first()
            .and_then(|e| e.event_id())
            .map(str::to_owned);
        Ok(Self {
            stack_id: stack_id.to_owned(),
            newest_seen: newest,
            lines: Vec::new(),
            failures: Vec::new(),
        })
    }

    /// Prints and keeps the events that arrived since the last call.
    pub async fn poll(&mut self, cfn: &Client) -> anyhow::Result<()> {
        let mut fresh = Vec::new();
        let mut pages = cfn
            .describe_stack_events()
            .stack_name(&self.stack_id)
            .into_paginator()
            .send();
        'pages: while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error::explain(e, "cannot read the stack's events"))?;
            for event in page.stack_events() {
                if event.event_id().is_some() && event.event_id() == self.newest_seen.as_deref() {
                    break 'pages;
                }
                fresh.push(event.clone());
            }
        }
        if let Some(newest) = fresh.first() {
            self.newest_seen = newest.event_id().map(str::to_owned);
        }
        for event in fresh.iter().rev() {
            let status = event
                .resource_status()
                .map(|s| s.as_str())
                .unwrap_or_default();
            let reason = event.resource_status_reason().unwrap_or_default();
            let line = format!(
                "{}  {:<30} {:<36} {}{}",
                event.timestamp().map(clock).unwrap_or_default(),
                status,
                event.resource_type().unwrap_or_default(),
                event.logical_resource_id().unwrap_or_default(),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!("  {reason}")
                },
            );
            println!("  {line}");
            if status.ends_with("_FAILED") && !reason.is_empty() {
                self.failures.push(format!(
                    "{} {status}: {reason}",
                    event.logical_resource_id().unwrap_or_default()
                ));
            }
            self.lines.push(line);
        }
        Ok(())
    }
}

/// `HH:MM:SS` (UTC) of an event.
fn clock(time: &aws_smithy_types::DateTime) -> String {
    let seconds = time.secs().rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Waits until no operation runs on the stack `stack_id`, printing its events
/// meanwhile, and returns its final status. Gives up at `deadline`
/// (CloudFormation carries on without us).
pub async fn wait_until_settled(
    cfn: &Client,
    stack_id: &str,
    events: &mut EventWatcher,
    deadline: Instant,
) -> anyhow::Result<String> {
    let mut pause = FIRST_POLL;
    loop {
        events.poll(cfn).await?;
        let status = describe(cfn, stack_id)
            .await?
            .map(|s| s.status)
            .context("the stack disappeared while deploying")?;
        if !status.ends_with("_IN_PROGRESS") {
            events.poll(cfn).await?;
            return Ok(status);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "stack {stack_id} is still {status}: gave up waiting (raise --timeout); CloudFormation carries on, follow it in its console"
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_utc_clock_times() {
        let t = aws_smithy_types::DateTime::from_secs(1_700_000_000 + 86_400 * 3);
        assert_eq!(clock(&t), "22:13:20");
    }

    #[test]
    fn planned_changes_read_as_a_table() {
        let change = PlannedChange {
            action: "Modify".into(),
            logical_id: "StreamProcessorTrigger".into(),
            resource_type: "AWS::Lambda::EventSourceMapping".into(),
            replacement: Some("False".into()),
        };
        assert_eq!(
            change.to_string(),
            "Modify   AWS::Lambda::EventSourceMapping      StreamProcessorTrigger"
        );
    }
}
