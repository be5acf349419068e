//! JSON Schemas of the command bodies, published in the manifest (the
//! gateway lists them). The typed bodies in `lib.rs` are what is enforced.

macro_rules! id {
    () => {
        r#"{"type":"string","pattern":"^[A-Za-z0-9_-]{1,64}$"}"#
    };
}
macro_rules! reference {
    () => {
        r#"{"type":"string","minLength":1,"maxLength":256}"#
    };
}
macro_rules! title {
    () => {
        r#"{"type":"string","minLength":1,"maxLength":200}"#
    };
}
macro_rules! notes {
    () => {
        r#"{"type":"string","maxLength":10000}"#
    };
}
macro_rules! priority {
    () => {
        r#"{"type":"integer","minimum":0,"maximum":100,"default":1}"#
    };
}
macro_rules! quantum {
    () => {
        r#"{"type":"string","pattern":"^ *([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)? *$","default":"50m","examples":["25m","1h","1h30m","300ms"]}"#
    };
}
macro_rules! energy {
    () => {
        r#"{"enum":["deep","moderate","light"],"default":"moderate"}"#
    };
}
macro_rules! version {
    () => {
        r#"{"type":"integer","minimum":0}"#
    };
}

pub(crate) const SAGA_CREATE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["title"],"properties":{"id":"#,
    id!(),
    r#","title":"#,
    title!(),
    r#","notes":"#,
    notes!(),
    r#","priority":"#,
    priority!(),
    r#","quantum":"#,
    quantum!(),
    "}}"
);

pub(crate) const STORY_CREATE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["saga_id","title"],"properties":{"id":"#,
    id!(),
    r#","saga_id":"#,
    reference!(),
    r#","title":"#,
    title!(),
    r#","notes":"#,
    notes!(),
    r#","priority":"#,
    priority!(),
    r#","quantum":"#,
    quantum!(),
    r#","energy":"#,
    energy!(),
    "}}"
);

pub(crate) const TASK_CREATE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["title"],"properties":{"id":"#,
    id!(),
    r#","saga_id":"#,
    reference!(),
    r#","title":"#,
    title!(),
    r#","notes":"#,
    notes!(),
    r#","priority":"#,
    priority!(),
    r#","quantum":"#,
    quantum!(),
    r#","energy":"#,
    energy!(),
    "}}"
);

pub(crate) const UPDATE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["id"],"minProperties":2,"properties":{"id":"#,
    reference!(),
    r#","title":"#,
    title!(),
    r#","notes":"#,
    notes!(),
    r#","priority":"#,
    priority!(),
    r#","quantum":{"anyOf":["#,
    quantum!(),
    r#",{"type":"null","description":"follow the saga's quantum again (or the default)"}]},"energy":"#,
    energy!(),
    r#","expected_version":"#,
    version!(),
    "}}"
);

pub(crate) const TARGET: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":"#,
    reference!(),
    r#","expected_version":"#,
    version!(),
    "}}"
);

pub(crate) const BLOCK: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["id","reason"],"properties":{"id":"#,
    reference!(),
    r#","reason":{"type":"string","minLength":1,"maxLength":1000},"expected_version":"#,
    version!(),
    "}}"
);

pub(crate) const DELETE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":"#,
    reference!(),
    r#","cascade":{"type":"boolean","default":false},"expected_version":"#,
    version!(),
    "}}"
);

pub(crate) const GET: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":"#,
    reference!(),
    "}}"
);

pub(crate) const LIST: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"properties":{"text":{"type":"string","maxLength":200},"kind":{"enum":["saga","story","task"]},"state":{"enum":["active","ready","running","parked","blocked","done"]},"archived":{"enum":[false,true,"any"],"default":false},"saga_id":"#,
    reference!(),
    r#","sprint_id":"#,
    reference!(),
    r#","limit":{"type":"integer","minimum":1,"maximum":500,"default":100}}}"#
);

pub(crate) const EXPIRE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["id","run"],"properties":{"id":"#,
    reference!(),
    r#","run":{"type":"integer","minimum":1}}}"#
);

pub(crate) const SPRINT_CREATE: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["title"],"properties":{"id":"#,
    id!(),
    r#","title":"#,
    title!(),
    r#","goal":"#,
    notes!(),
    "}}"
);

pub(crate) const SPRINT_STORY: &str = concat!(
    r#"{"type":"object","additionalProperties":false,"required":["sprint_id","story_id"],"properties":{"sprint_id":"#,
    reference!(),
    r#","story_id":"#,
    reference!(),
    r#","expected_version":"#,
    version!(),
    "}}"
);

pub(crate) const EMPTY: &str = r#"{"type":"object","additionalProperties":false}"#;
