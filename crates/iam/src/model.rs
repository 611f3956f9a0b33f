//! The IAM's state as one value: users and service accounts, groups, and the ACLs that grant
//! them actions on resources; the rules its ids follow, and the policy decision.
//!
//! Every change is a pure function from a [`State`] to the next one (or an [`ApiError`] that
//! leaves it as it was), so the store can apply it with compare-and-set and every master
//! decides the same way.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::api::{Action, ApiError, SUPERUSER};

/// The longest uid, gid or description accepted.
pub const MAX_ID: usize = 96;
/// The longest resource id accepted.
pub const MAX_RID: usize = 256;
/// The longest description accepted.
pub const MAX_DESCRIPTION: usize = 1024;
/// The most users, groups or ACLs the IAM keeps (each), so the state stays one small value.
pub const MAX_ENTRIES: usize = 2000;

/// How an account proves who it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A person: an Argon2id hash (PHC string) of the password.
    Password {
        /// The PHC string.
        hash: String,
    },
    /// A service account: its RSA public key (PEM), which signs its login tokens.
    ServiceAccount {
        /// The PEM.
        public_key: String,
    },
    /// A person whose identity another provider (an OpenID Connect issuer) vouches for.
    Remote {
        /// The provider's id.
        provider_id: String,
    },
}

/// A user or service account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// What it is called.
    pub description: String,
    /// How it logs in.
    pub credential: Credential,
}

impl Account {
    /// Whether it is a service account.
    pub fn is_service(&self) -> bool {
        matches!(self.credential, Credential::ServiceAccount { .. })
    }

    /// Whether another provider vouches for it.
    pub fn is_remote(&self) -> bool {
        matches!(self.credential, Credential::Remote { .. })
    }
}

/// A group of accounts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Group {
    /// What it is called.
    pub description: String,
    /// Its members' uids.
    pub members: BTreeSet<String>,
}

/// An ACL: the actions each account and group may take on one resource.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Acl {
    /// What the resource is.
    pub description: String,
    /// Actions granted to accounts.
    pub users: BTreeMap<String, BTreeSet<Action>>,
    /// Actions granted to groups.
    pub groups: BTreeMap<String, BTreeSet<Action>>,
}

impl Acl {
    /// The actions granted to `who` here, if it is in the ACL.
    pub fn granted(&self, who: Grantee<'_>) -> Option<&BTreeSet<Action>> {
        match who {
            Grantee::User(uid) => self.users.get(uid),
            Grantee::Group(gid) => self.groups.get(gid),
        }
    }

    fn grants_of(&mut self, who: Grantee<'_>) -> (&mut BTreeMap<String, BTreeSet<Action>>, String) {
        match who {
            Grantee::User(uid) => (&mut self.users, uid.to_string()),
            Grantee::Group(gid) => (&mut self.groups, gid.to_string()),
        }
    }

    /// The 400 for `who` not being in the ACL of `rid`.
    pub fn not_in(who: Grantee<'_>, rid: &str) -> ApiError {
        match who {
            Grantee::User(uid) => ApiError::not_granted(
                "ERR_USER_NOT_IN_ACL",
                format!("User `{uid}` is not part of ACL for resource `{rid}`"),
            ),
            Grantee::Group(gid) => ApiError::not_granted(
                "ERR_GROUP_NOT_IN_ACL",
                format!("Group `{gid}` is not part of ACL for resource `{rid}`"),
            ),
        }
    }
}

/// Everything the IAM knows but its signing key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Accounts by uid.
    pub users: BTreeMap<String, Account>,
    /// Groups by gid.
    pub groups: BTreeMap<String, Group>,
    /// ACLs by resource id.
    pub acls: BTreeMap<String, Acl>,
}

/// Whether `uid` is a valid user or service account id: 1 to 96 of letters, digits and
/// `@ . _ -`, not starting with a dot (it is also a path segment); `anonymous` is reserved.
pub fn valid_uid(uid: &str) -> bool {
    uid != "anonymous" && valid_id(uid, |c| c.is_ascii_alphanumeric() || "@._-".contains(c))
}

/// Whether `gid` is a valid group id: 1 to 96 of letters, digits and `. _ -`.
pub fn valid_gid(gid: &str) -> bool {
    valid_id(gid, |c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn valid_id(id: &str, allowed: impl Fn(char) -> bool) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && !id.starts_with('.') && id.chars().all(allowed)
}

/// Whether `rid` is a valid resource id: `dcos:` and then letters, digits and `: _ - . / @ *`,
/// at most 256 long, without empty `:` segments.
pub fn valid_rid(rid: &str) -> bool {
    rid.len() <= MAX_RID
        && rid.starts_with("dcos:")
        && rid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_-./@*".contains(c))
        && rid.split(':').all(|s| !s.is_empty())
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.len() > MAX_DESCRIPTION || d.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "description must be at most {MAX_DESCRIPTION} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_room<T>(map: &BTreeMap<String, T>, what: &str) -> Result<(), ApiError> {
    if map.len() >= MAX_ENTRIES {
        return Err(ApiError::invalid(format!(
            "the IAM keeps at most {MAX_ENTRIES} {what}"
        )));
    }
    Ok(())
}

impl State {
    /// The account `uid`, or 404.
    pub fn account(&self, uid: &str) -> Result<&Account, ApiError> {
        self.users
            .get(uid)
            .ok_or_else(|| ApiError::unknown_user(uid))
    }

    /// The group `gid`, or 404.
    pub fn group(&self, gid: &str) -> Result<&Group, ApiError> {
        self.groups
            .get(gid)
            .ok_or_else(|| ApiError::unknown_group(gid))
    }

    /// The ACL of `rid`, or 404.
    pub fn acl(&self, rid: &str) -> Result<&Acl, ApiError> {
        self.acls.get(rid).ok_or_else(|| ApiError::unknown_acl(rid))
    }

    /// Adds an account; 409 if the uid is taken.
    pub fn add_account(&mut self, uid: &str, account: Account) -> Result<(), ApiError> {
        if !valid_uid(uid) {
            return Err(ApiError::invalid_uid(uid));
        }
        check_description(&account.description)?;
        if self.users.contains_key(uid) {
            return Err(ApiError::conflict(
                "ERR_USER_EXISTS",
                format!("User with id `{uid}` already exists."),
            ));
        }
        check_room(&self.users, "users")?;
        self.users.insert(uid.to_string(), account);
        Ok(())
    }

    /// Changes an account's description and, if given, its credential (of the same kind).
    pub fn update_account(
        &mut self,
        uid: &str,
        description: Option<String>,
        credential: Option<Credential>,
    ) -> Result<(), ApiError> {
        if let Some(d) = &description {
            check_description(d)?;
        }
        let account = self
            .users
            .get_mut(uid)
            .ok_or_else(|| ApiError::unknown_user(uid))?;
        if let Some(c) = credential {
            if std::mem::discriminant(&c) != std::mem::discriminant(&account.credential) {
                return Err(ApiError::invalid(
                    "a user's password or a service account's key can be changed, not its kind",
                ));
            }
            account.credential = c;
        }
        if let Some(d) = description {
            account.description = d;
        }
        Ok(())
    }

    /// Removes an account, its memberships and its grants.
    pub fn remove_account(&mut self, uid: &str) -> Result<(), ApiError> {
        self.account(uid)?;
        self.keep_a_superuser(|s| {
            s.users.remove(uid);
        })?;
        for g in self.groups.values_mut() {
            g.members.remove(uid);
        }
        for acl in self.acls.values_mut() {
            acl.users.remove(uid);
        }
        Ok(())
    }

    /// Adds a group; 409 if the gid is taken.
    pub fn add_group(&mut self, gid: &str, description: String) -> Result<(), ApiError> {
        if !valid_gid(gid) {
            return Err(ApiError::new_invalid_gid(gid));
        }
        check_description(&description)?;
        if self.groups.contains_key(gid) {
            return Err(ApiError::conflict(
                "ERR_GROUP_EXISTS",
                format!("Group with id `{gid}` already exists."),
            ));
        }
        check_room(&self.groups, "groups")?;
        self.groups.insert(
            gid.to_string(),
            Group {
                description,
                members: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Removes a group and its grants.
    pub fn remove_group(&mut self, gid: &str) -> Result<(), ApiError> {
        self.group(gid)?;
        self.keep_a_superuser(|s| {
            s.groups.remove(gid);
            for acl in s.acls.values_mut() {
                acl.groups.remove(gid);
            }
        })
    }

    /// Puts `uid` in `gid` (idempotent).
    pub fn join(&mut self, gid: &str, uid: &str) -> Result<(), ApiError> {
        self.account(uid)?;
        let group = self
            .groups
            .get_mut(gid)
            .ok_or_else(|| ApiError::unknown_group(gid))?;
        if !group.members.insert(uid.to_string()) {
            return Err(ApiError::conflict(
                "ERR_MEMBERSHIP_EXISTS",
                format!("User `{uid}` is already a member of group `{gid}`."),
            ));
        }
        Ok(())
    }

    /// Takes `uid` out of `gid`; 404 if it was not in it.
    pub fn leave(&mut self, gid: &str, uid: &str) -> Result<(), ApiError> {
        if !self.group(gid)?.members.contains(uid) {
            return Err(ApiError::invalid(format!(
                "User `{uid}` is not a member of group `{gid}`."
            )));
        }
        self.keep_a_superuser(|s| {
            if let Some(g) = s.groups.get_mut(gid) {
                g.members.remove(uid);
            }
        })
    }

    /// The groups `uid` is in.
    pub fn groups_of<'a>(
        &'a self,
        uid: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Group)> + 'a {
        self.groups
            .iter()
            .filter(move |(_, g)| g.members.contains(uid))
    }

    /// Creates the ACL of `rid`; 409 if it exists.
    pub fn add_acl(&mut self, rid: &str, description: String) -> Result<(), ApiError> {
        if !valid_rid(rid) {
            return Err(ApiError::invalid_rid(rid));
        }
        check_description(&description)?;
        if self.acls.contains_key(rid) {
            return Err(ApiError::conflict(
                "ERR_ACL_EXISTS",
                format!("ACL for resource `{rid}` already exists."),
            ));
        }
        check_room(&self.acls, "ACLs")?;
        self.acls.insert(
            rid.to_string(),
            Acl {
                description,
                ..Acl::default()
            },
        );
        Ok(())
    }

    /// Changes the description of the ACL of `rid`.
    pub fn describe_acl(&mut self, rid: &str, description: String) -> Result<(), ApiError> {
        check_description(&description)?;
        let acl = self
            .acls
            .get_mut(rid)
            .ok_or_else(|| ApiError::unknown_acl(rid))?;
        acl.description = description;
        Ok(())
    }

    /// Removes the ACL of `rid`.
    pub fn remove_acl(&mut self, rid: &str) -> Result<(), ApiError> {
        self.acl(rid)?;
        self.keep_a_superuser(|s| {
            s.acls.remove(rid);
        })
    }

    /// Grants `action` on `rid` to an account (`group` false) or a group; the ACL is created
    /// when missing, as the CLI's `acl grant` expects.
    pub fn grant(&mut self, rid: &str, who: Grantee<'_>, action: Action) -> Result<(), ApiError> {
        match who {
            Grantee::User(uid) => drop(self.account(uid)?),
            Grantee::Group(gid) => drop(self.group(gid)?),
        }
        if !self.acls.contains_key(rid) {
            self.add_acl(rid, String::new())?;
        }
        let acl = self
            .acls
            .get_mut(rid)
            .ok_or_else(|| ApiError::unknown_acl(rid))?;
        let (map, id) = acl.grants_of(who);
        map.entry(id).or_default().insert(action);
        Ok(())
    }

    /// Revokes `action` on `rid` from an account or a group; 400 if it was not granted, or
    /// if no account would be left with full access to `dcos:superuser`.
    pub fn revoke(&mut self, rid: &str, who: Grantee<'_>, action: Action) -> Result<(), ApiError> {
        let mut next = self.clone();
        next.revoke_unchecked(rid, who, action)?;
        self.keep_a_superuser(|s| *s = next)
    }

    /// Applies `change` unless it takes the last superuser away (when there was one).
    fn keep_a_superuser(&mut self, change: impl FnOnce(&mut State)) -> Result<(), ApiError> {
        let had = self.has_superuser();
        let before = self.clone();
        change(self);
        if had && !self.has_superuser() {
            *self = before;
            return Err(ApiError::last_superuser());
        }
        Ok(())
    }

    /// Whether some account may do everything.
    fn has_superuser(&self) -> bool {
        self.users
            .keys()
            .any(|uid| self.actions(uid, SUPERUSER).contains(&Action::Full))
    }

    fn revoke_unchecked(
        &mut self,
        rid: &str,
        who: Grantee<'_>,
        action: Action,
    ) -> Result<(), ApiError> {
        let acl = self
            .acls
            .get_mut(rid)
            .ok_or_else(|| ApiError::unknown_acl(rid))?;
        let (map, id) = acl.grants_of(who);
        let Some(actions) = map.get_mut(&id) else {
            return Err(Acl::not_in(who, rid));
        };
        if !actions.remove(&action) {
            let kind = match who {
                Grantee::User(_) => "user",
                Grantee::Group(_) => "group",
            };
            return Err(ApiError::not_granted(
                "ERR_ACTION_NOT_YET_STORED",
                format!(
                    "Action `{}` unknown for {kind} `{id}` in ACL for resource `{rid}`",
                    action.as_str()
                ),
            ));
        }
        if actions.is_empty() {
            map.remove(&id);
        }
        Ok(())
    }

    /// The actions granted to `uid` on `rid`, directly or through its groups.
    pub fn actions(&self, uid: &str, rid: &str) -> BTreeSet<Action> {
        let Some(acl) = self.acls.get(rid) else {
            return BTreeSet::new();
        };
        let mut out: BTreeSet<Action> = acl.users.get(uid).cloned().unwrap_or_default();
        for (gid, _) in self.groups_of(uid) {
            out.extend(acl.groups.get(gid).into_iter().flatten().copied());
        }
        out
    }

    /// Whether `uid` may take `action` on `rid`: granted it (or `full`) there, or `full` on
    /// `dcos:superuser`. An unknown account may do nothing.
    pub fn allowed(&self, uid: &str, rid: &str, action: Action) -> bool {
        if !self.users.contains_key(uid) {
            return false;
        }
        let granted = self.actions(uid, rid);
        self.actions(uid, SUPERUSER).contains(&Action::Full)
            || granted.contains(&Action::Full)
            || granted.contains(&action)
    }
}

/// Who a grant is for.
#[derive(Clone, Copy, Debug)]
pub enum Grantee<'a> {
    /// An account.
    User(&'a str),
    /// A group.
    Group(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn person(d: &str) -> Account {
        Account {
            description: d.into(),
            credential: Credential::Password { hash: "x".into() },
        }
    }

    #[test]
    fn grants_reach_users_directly_and_through_groups() {
        let mut s = State::default();
        s.add_account("alice", person("Alice")).unwrap();
        s.add_account("bob", person("Bob")).unwrap();
        s.add_group("ops", "Operators".into()).unwrap();
        s.join("ops", "bob").unwrap();
        let marathon = "dcos:adminrouter:service:marathon";
        s.grant(marathon, Grantee::User("alice"), Action::Full)
            .unwrap();
        s.grant(
            "dcos:adminrouter:ops:mesos",
            Grantee::Group("ops"),
            Action::Read,
        )
        .unwrap();
        assert!(s.allowed("alice", marathon, Action::Read));
        assert!(!s.allowed("alice", "dcos:adminrouter:ops:mesos", Action::Read));
        assert!(s.allowed("bob", "dcos:adminrouter:ops:mesos", Action::Read));
        assert!(!s.allowed("bob", "dcos:adminrouter:ops:mesos", Action::Full));
        assert!(!s.allowed("carol", marathon, Action::Read));
        s.grant(SUPERUSER, Grantee::User("bob"), Action::Full)
            .unwrap();
        assert!(s.allowed("bob", "dcos:anything", Action::Delete));
        s.leave("ops", "bob").unwrap();
        assert!(s.allowed("bob", "dcos:adminrouter:ops:mesos", Action::Full));
        // The last superuser stays.
        let before = s.clone();
        assert_eq!(
            s.remove_account("bob").unwrap_err().code,
            "ERR_NO_MORE_SUPERUSERS"
        );
        assert_eq!(
            s.revoke(SUPERUSER, Grantee::User("bob"), Action::Full)
                .unwrap_err()
                .code,
            "ERR_NO_MORE_SUPERUSERS"
        );
        assert_eq!(s, before);
        s.grant(SUPERUSER, Grantee::User("alice"), Action::Full)
            .unwrap();
        s.remove_account("bob").unwrap();
        assert!(!s.allowed("bob", "dcos:anything", Action::Read));
        assert_eq!(
            s.acls[SUPERUSER].users.keys().collect::<Vec<_>>(),
            ["alice"]
        );
        assert_eq!(
            s.revoke(marathon, Grantee::User("alice"), Action::Read)
                .unwrap_err()
                .code,
            "ERR_ACTION_NOT_YET_STORED"
        );
        s.revoke(marathon, Grantee::User("alice"), Action::Full)
            .unwrap();
        assert!(s.actions("alice", marathon).is_empty());
    }

    #[test]
    fn ids_are_checked_where_they_enter() {
        let mut s = State::default();
        for bad in ["", ".hidden", "a/b", "a b", "ä", &"x".repeat(97)] {
            assert!(s.add_account(bad, person("")).is_err(), "{bad:?}");
        }
        assert!(s.add_account("albert@bekstil.net", person("")).is_ok());
        assert!(
            s.add_account("albert@bekstil.net", person(""))
                .unwrap_err()
                .status
                == 409
        );
        for bad in ["mesos", "dcos:", "dcos::x", "dcos:a b", "dcos:x\n"] {
            assert!(!valid_rid(bad), "{bad:?}");
        }
        assert!(valid_rid("dcos:mesos:master:task:app_id:/prod/web"));
        assert!(s
            .grant("dcos:x", Grantee::User("nobody"), Action::Read)
            .is_err());
        assert!(s.acls.is_empty(), "a refused grant leaves nothing behind");
    }

    proptest! {
        // Whatever happens to the state, nothing refers to an account or group that is gone.
        #[test]
        fn removals_leave_no_dangling_references(ops in proptest::collection::vec((0u8..6, 0u8..4, 0u8..3), 0..60)) {
            let mut s = State::default();
            let uid = |i: u8| format!("u{i}");
            let gid = |i: u8| format!("g{i}");
            let rid = |i: u8| format!("dcos:r{i}");
            for (op, a, b) in ops {
                let _ = match op {
                    0 => s.add_account(&uid(a), person("")),
                    1 => s.remove_account(&uid(a)),
                    2 => s.add_group(&gid(a), String::new()).and_then(|_| s.join(&gid(a), &uid(b))),
                    3 => s.remove_group(&gid(a)),
                    4 => s.grant(&rid(b), Grantee::User(&uid(a)), Action::Read),
                    _ => s.grant(&rid(b), Grantee::Group(&gid(a)), Action::Full),
                };
            }
            for g in s.groups.values() {
                prop_assert!(g.members.iter().all(|m| s.users.contains_key(m)));
            }
            for acl in s.acls.values() {
                prop_assert!(acl.users.keys().all(|u| s.users.contains_key(u)));
                prop_assert!(acl.groups.keys().all(|g| s.groups.contains_key(g)));
            }
        }
    }
}
