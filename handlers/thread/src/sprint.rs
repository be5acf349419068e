//! Sprints: creating and editing them, planning stories in them, and
//! their totals.

use parallel_you_sdk::{Ctx, Doc, Error, Event};
use serde_json::json;

use crate::bodies::{CreateSprint, Empty, Get, SprintStory, UpdateSprint};
use crate::model::{self, Kind, Sprint, SprintState, Thread};
use crate::store::{
    insert, now, require_kind, require_sprint, save, sprints, thread_event, threads, versioned,
    versioned_all, MAX_CHILDREN,
};
use crate::validate::{check_expected, check_notes, check_ref, check_title, new_id, with_id};

pub(crate) fn create_sprint(ctx: &Ctx, b: CreateSprint) -> Result<Vec<Event>, Error> {
    let title = check_title(&b.title)?;
    let goal = check_notes("goal", &b.goal)?;
    let id = new_id(&ctx.meta().message_id, "sprint", b.id.as_deref())?;
    let now = now(ctx);
    let sprint = Sprint {
        id,
        title,
        goal,
        state: SprintState::Open,
        next_sprint_id: None,
        closed_at: None,
        created_at: now.clone(),
        updated_at: now,
    };
    let version = insert(&sprints(ctx), &sprint.id, &sprint)?;
    Ok(vec![Event::new(
        "thread.sprint.created",
        &versioned(&sprint, version),
    )?])
}

pub(crate) fn update_sprint(ctx: &Ctx, b: UpdateSprint) -> Result<Vec<Event>, Error> {
    check_ref("id", &b.id)?;
    if b.title.is_none() && b.goal.is_none() {
        return Err(Error::validation(
            "nothing to update: give `title` or `goal`",
        ));
    }
    let title = b.title.as_deref().map(check_title).transpose()?;
    let goal = b
        .goal
        .as_deref()
        .map(|g| check_notes("goal", g))
        .transpose()?;
    let doc = require_sprint(ctx, &b.id)?;
    check_expected(&b.id, b.expected_version, doc.version)?;
    if doc.value.state == SprintState::Closed {
        return Err(Error::invalid_transition(format!(
            "sprint `{}` is closed: reopen it to change it",
            doc.id
        ))
        .with_context(json!({ "sprint_id": doc.id, "current_state": doc.value.state })));
    }
    let mut next = doc.value.clone();
    if let Some(title) = title {
        next.title = title;
    }
    if let Some(goal) = goal {
        next.goal = goal;
    }
    next.updated_at = now(ctx);
    let version = sprints(ctx)
        .put(&next.id, &next, Some(doc.version))
        .map_err(|e| with_id(e, &next.id))?;
    Ok(vec![Event::new(
        "thread.sprint.updated",
        &versioned(&next, version),
    )?])
}

/// The story `id`: only stories are planned in sprints.
fn require_story(ctx: &Ctx, id: &str) -> Result<Doc<Thread>, Error> {
    require_kind(
        ctx,
        Kind::Story,
        "story_id",
        id,
        ": only stories are planned in sprints",
    )
}

pub(crate) fn add_story(ctx: &Ctx, b: SprintStory) -> Result<Vec<Event>, Error> {
    replan(ctx, &b, "thread.sprint.story_added", |sprint, doc| {
        let story = &doc.value;
        if story.archived {
            return Err(Error::invalid_transition(format!(
                "story `{}` is archived: archived stories are not planned",
                story.id
            ))
            .with_context(
                json!({ "story_id": story.id, "current_state": story.state, "archived": true }),
            ));
        }
        if sprint.value.state != SprintState::Open {
            return Err(Error::invalid_transition(format!(
                "sprint `{}` is {}: stories are planned in open sprints",
                sprint.id,
                sprint.value.state.as_str()
            ))
            .with_context(json!({
                "story_id": story.id,
                "sprint_id": sprint.id,
                "sprint_state": sprint.value.state,
            })));
        }
        if story.sprint_id.as_deref() == Some(sprint.id.as_str()) {
            return Err(Error::invalid_transition(format!(
                "story `{}` is already in sprint `{}`",
                story.id, sprint.id
            ))
            .with_context(json!({ "story_id": story.id, "sprint_id": sprint.id })));
        }
        Ok(Some(sprint.id.clone()))
    })
}

pub(crate) fn remove_story(ctx: &Ctx, b: SprintStory) -> Result<Vec<Event>, Error> {
    replan(ctx, &b, "thread.sprint.story_removed", |sprint, doc| {
        if doc.value.sprint_id.as_deref() != Some(sprint.id.as_str()) {
            return Err(Error::not_found(format!(
                "story `{}` is not in sprint `{}`",
                doc.id, sprint.id
            ))
            .with_context(json!({
                "story_id": doc.id,
                "sprint_id": sprint.id,
                "story_sprint_id": doc.value.sprint_id,
            })));
        }
        Ok(None)
    })
}

/// Moves the story a body names into or out of its sprint: `plan` says
/// why not, or the story's new `sprint_id`; the story is written over the
/// version read and answered as `key`.
fn replan(
    ctx: &Ctx,
    b: &SprintStory,
    key: &str,
    plan: impl FnOnce(&Doc<Sprint>, &Doc<Thread>) -> Result<Option<String>, Error>,
) -> Result<Vec<Event>, Error> {
    let sprint = require_sprint(ctx, &b.sprint_id)?;
    let doc = require_story(ctx, &b.story_id)?;
    check_expected(&b.story_id, b.expected_version, doc.version)?;
    let mut next = doc.value.clone();
    next.sprint_id = plan(&sprint, &doc)?;
    next.updated_at = now(ctx);
    let version = save(ctx, &next, doc.version)?;
    Ok(vec![thread_event(key, &next, version)?])
}

pub(crate) fn get_sprint(ctx: &Ctx, b: Get) -> Result<Vec<Event>, Error> {
    let sprint = require_sprint(ctx, &b.id)?;
    let stories = threads(ctx).list(json!({ "sprint_id": sprint.id, "$limit": MAX_CHILDREN }))?;
    let totals = model::sprint_totals(stories.iter().map(|d| &d.value));
    let shown = versioned_all(&stories);
    Ok(vec![Event::new(
        "thread.sprint.got",
        &json!({
            "sprint": versioned(&sprint.value, sprint.version),
            "stories": shown,
            "totals": totals,
        }),
    )?])
}

pub(crate) fn list_sprints(ctx: &Ctx, _b: Empty) -> Result<Vec<Event>, Error> {
    let all = sprints(ctx).list(json!({}))?;
    let shown = versioned_all(&all);
    Ok(vec![Event::new(
        "thread.sprint.listed",
        &json!({ "sprints": shown, "count": shown.len() }),
    )?])
}
