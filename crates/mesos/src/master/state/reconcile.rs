//! RECONCILE: the latest state of the tasks a framework asks about (explicit), or of all its
//! tasks (implicit), as UPDATE events without a uuid.

use crate::api::{Reason, TaskState, TaskStatus};
use crate::scheduler::{Event, ReconcileTask, Update};

use super::{master_status, Framework, Master};

impl Master {
    /// RECONCILE: explicit (the given tasks) or implicit (every task of the framework).
    pub fn reconcile(&mut self, framework_id: &str, tasks: &[ReconcileTask]) {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let updates: Vec<TaskStatus> = if tasks.is_empty() {
            fw.tasks.values().map(|t| t.reconciled()).collect()
        } else {
            tasks
                .iter()
                .filter_map(|asked| self.reconcile_one(fw, asked))
                .collect()
        };
        for status in updates {
            self.outbox.framework(fw, Event::Update(Update { status }));
        }
    }

    /// The answer about one task, if there is one yet.
    fn reconcile_one(&self, fw: &Framework, asked: &ReconcileTask) -> Option<TaskStatus> {
        if let Some(t) = fw.tasks.get(&asked.task_id.value) {
            return Some(t.reconciled());
        }
        // As Mesos: nothing while the task's agent (or, without an agent id, any agent) is
        // recovered from the registry and not re-registered yet. After a failover the agent
        // is about to report its tasks.
        let transitioning = match &asked.agent_id {
            Some(a) => self.recovered_agents.contains_key(&a.value),
            None => !self.recovered_agents.is_empty(),
        };
        if transitioning {
            return None;
        }
        let completed = fw
            .completed_tasks
            .iter()
            .rev()
            .find(|t| t.info.task_id == asked.task_id);
        Some(match completed {
            Some(t) => t.reconciled(),
            None => master_status(
                &asked.task_id,
                asked.agent_id.as_ref().map(|a| a.value.as_str()),
                TaskState::Lost,
                Reason::Reconciliation,
                "Reconciliation: Task is unknown".into(),
            ),
        })
    }
}
