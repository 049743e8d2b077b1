//! Security profiles as users have them (a CreateSecurityProfile body or the output of
//! `describe-security-profile`, detect-rules §2): the model, and loading with its checks.

mod load;
mod model;
mod validate;

pub use load::{load, load_all, parse};
pub use model::{
    Behavior, Loaded, Problem, Profile, ProfileError, Rule, Warning, fingerprint_of,
    same_fingerprint,
};

#[cfg(test)]
mod tests;
