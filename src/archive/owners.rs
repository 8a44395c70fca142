//! User and group names for tar headers, looked up once per id: a tree of
//! 46,000 files owned by a handful of users costs a handful of lookups
//! (each of which may read `/etc/passwd` or ask NSS). Restore asks the other
//! way, a name's id on this machine, as often, so [`OwnerIds`] caches too.

use std::collections::HashMap;

use nix::unistd::{Gid, Group, Uid, User};

/// The names seen so far; an id without a name maps to `None`.
#[derive(Debug, Default)]
pub struct OwnerNames {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl OwnerNames {
    pub fn user(&mut self, uid: u32) -> Option<&str> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .as_deref()
    }

    pub fn group(&mut self, gid: u32) -> Option<&str> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .as_deref()
    }
}

/// The ids of user and group names on this machine; a name unknown here
/// maps to `None`.
#[derive(Debug, Default)]
pub struct OwnerIds {
    users: HashMap<String, Option<u32>>,
    groups: HashMap<String, Option<u32>>,
}

impl OwnerIds {
    pub fn user(&mut self, name: &str) -> Option<u32> {
        *self
            .users
            .entry(name.to_string())
            .or_insert_with(|| User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()))
    }

    pub fn group(&mut self, name: &str) -> Option<u32> {
        *self.groups.entry(name.to_string()).or_insert_with(|| {
            Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_system_and_unknown_ids_have_none() {
        let mut names = OwnerNames::default();
        assert_eq!(names.user(0), Some("root"));
        assert_eq!(names.group(0), Some("root"));
        assert_eq!(names.user(3_999_999_999), None);
        assert_eq!(names.user(3_999_999_999), None, "cached");
        let mut ids = OwnerIds::default();
        assert_eq!(ids.user("root"), Some(0));
        assert_eq!(ids.group("root"), Some(0));
        assert_eq!(ids.user("no-such-user-here"), None);
    }
}
