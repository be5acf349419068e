//! The Parallel You thread domain (DESIGN §8): sagas, stories and tasks,
//! their state machine, quantum timers and sprints.
//!
//! A *thread* is a saga (long-running parent), a story (a work packet under
//! a saga) or a task (top-level or under a saga). Stories and tasks move
//! `ready → running → done`, with `parked` and `blocked` (with a reason)
//! reachable from `ready` and `running`; `start` resumes a parked thread,
//! `unblock` makes a blocked one `ready` again. Sagas are `active` until
//! completed (once every child is done). A done thread can be archived.
//!
//! Starting a story or task schedules `thread.quantum.expire {id, run}`
//! after its quantum; parking, blocking, completing or deleting it cancels
//! that timer, and a timer that still fires is ignored unless the thread is
//! running on the same run under that very timer.
//!
//! Every change answers a past-tense event whose body is the full new state
//! of the thread (or sprint) with its store `version`; refusals are error
//! events (`validation`, `not_found`, `invalid_transition`, `conflict`,
//! `has_children`). `docs/thread-domain.md` has the table of commands.
//!
//! Threads live in the `threads` collection, sprints in `sprints`; a story
//! points to its sprint with `sprint_id`.

mod bodies;
mod closing;
mod commands;
mod model;
mod quantum;
mod schema;
mod sprint;
mod store;
mod time;
mod validate;

use parallel_you_sdk::{export_handler, Handler, Router};

use commands::create::{create_saga, create_story, create_task};
use commands::delete::delete;
use commands::lifecycle::{archive, block, complete, expire, park, start, unblock};
use commands::read::{get, list};
use commands::restore::restore;
use commands::update::update;
use sprint::{add_story, create_sprint, get_sprint, list_sprints, remove_story, update_sprint};
use store::{EXPIRE, THREADS};

struct ThreadDomain;

impl Handler for ThreadDomain {
    fn router() -> Router {
        let s = schema::all();
        Router::new("thread", env!("CARGO_PKG_VERSION"))
            .command("thread.saga.create", "Create a saga", create_saga)
            .schema(&s.saga_create)
            .command(
                "thread.story.create",
                "Create a story under a saga",
                create_story,
            )
            .schema(&s.story_create)
            .command(
                "thread.task.create",
                "Create a task, top-level or under a saga",
                create_task,
            )
            .schema(&s.task_create)
            .command(
                "thread.update",
                "Change a thread's title, notes, priority, quantum or energy band",
                update,
            )
            .schema(&s.update)
            .command(
                "thread.start",
                "Start (or resume) a story or task: ready|parked → running",
                start,
            )
            .schema(&s.target)
            .command(
                "thread.park",
                "Put a story or task aside: ready|running → parked",
                park,
            )
            .schema(&s.target)
            .command(
                "thread.block",
                "Mark a story or task blocked, with a reason: ready|running → blocked",
                block,
            )
            .schema(&s.block)
            .command(
                "thread.unblock",
                "Unblock a story or task: blocked → ready",
                unblock,
            )
            .schema(&s.target)
            .command(
                "thread.complete",
                "Finish a story or task (running → done) or a saga whose children are all done",
                complete,
            )
            .schema(&s.target)
            .command(
                "thread.archive",
                "Archive a done thread (hidden from default listings)",
                archive,
            )
            .schema(&s.target)
            .command(
                "thread.delete",
                "Delete a thread; a saga with children only with `cascade`",
                delete,
            )
            .schema(&s.delete)
            .command("thread.get", "Read one thread", get)
            .schema(&s.get)
            .command(
                "thread.list",
                "List threads by text, kind, state, saga, sprint (archived hidden unless asked)",
                list,
            )
            .schema(&s.list)
            .command(
                EXPIRE,
                "Internal: delivered by a started thread's quantum timer",
                expire,
            )
            .schema(&s.expire)
            .internal()
            .command("thread.sprint.create", "Create a sprint", create_sprint)
            .schema(&s.sprint_create)
            .command(
                "thread.sprint.update",
                "Change a sprint's title or goal (not a closed one)",
                update_sprint,
            )
            .schema(&s.sprint_update)
            .command(
                "thread.sprint.add_story",
                "Plan a story in a sprint (moving it from any other)",
                add_story,
            )
            .schema(&s.sprint_story)
            .command(
                "thread.sprint.remove_story",
                "Take a story out of a sprint",
                remove_story,
            )
            .schema(&s.sprint_story)
            .command(
                "thread.sprint.get",
                "A sprint with its stories and the quantum planned vs. done",
                get_sprint,
            )
            .schema(&s.get)
            .command("thread.sprint.list", "List every sprint", list_sprints)
            .schema(&s.empty)
            .command(
                "thread.sprint.close",
                "Close a sprint: open → closing; the sprintclose saga settles its stories",
                closing::close,
            )
            .schema(&s.sprint_close)
            .command(
                "thread.sprint.mark_closed",
                "Internal (sprintclose): closing → closed; idempotent",
                closing::mark_closed,
            )
            .schema(&s.get)
            .command(
                "thread.sprint.reopen",
                "Reopen a closing or closed sprint; idempotent",
                closing::reopen,
            )
            .schema(&s.get)
            .command(
                "thread.restore",
                "Put a story or task back as it was (state, sprint, archived); idempotent",
                restore,
            )
            .schema(&s.restore)
            .emits(&[
                "thread.saga.created",
                "thread.story.created",
                "thread.task.created",
                "thread.updated",
                "thread.started",
                "thread.parked",
                "thread.blocked",
                "thread.unblocked",
                "thread.completed",
                "thread.archived",
                "thread.deleted",
                "thread.got",
                "thread.listed",
                "thread.quantum.expired",
                "thread.sprint.created",
                "thread.sprint.updated",
                "thread.sprint.story_added",
                "thread.sprint.story_removed",
                "thread.sprint.got",
                "thread.sprint.listed",
                "thread.sprint.closing",
                "thread.sprint.closed",
                "thread.sprint.reopened",
                "thread.restored",
            ])
            // What `thread.list` and the saga and sprint checks filter on,
            // each in id order after its equalities (the order `list`
            // pages in), so a page costs its size, not the domain's.
            .index(THREADS, &["saga_id"])
            .index(THREADS, &["sprint_id"])
            .index(THREADS, &["state", "archived"])
            .index(THREADS, &["kind", "archived"])
    }
}

export_handler!(ThreadDomain);

#[cfg(test)]
mod tests;
