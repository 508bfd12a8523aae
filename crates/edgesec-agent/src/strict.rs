//! Stricter JSON reading than serde's defaults, so that no odd file is half understood:
//!
//! * [`unique_map`] refuses duplicate keys (serde_json would silently keep the last one, so a
//!   module listed twice would be half ignored);
//! * [`Object`] accepts a struct only when written as a JSON object (derived structs also
//!   accept an array of their fields in order, which no one means in a deployment file).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};

/// `#[serde(deserialize_with = "unique_map")]` for a `BTreeMap<String, V>`.
pub fn unique_map<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    deserializer.deserialize_map(UniqueMap(PhantomData))
}

struct UniqueMap<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMap<V> {
    type Value = BTreeMap<String, V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = access.next_value()?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// A `T` that must be written as a JSON object.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(access)).map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Holder {
        #[serde(deserialize_with = "unique_map")]
        m: BTreeMap<String, u32>,
    }

    #[test]
    fn reads_a_map() {
        let h: Holder = serde_json::from_str(r#"{"m":{"b":2,"a":1}}"#).unwrap();
        assert_eq!(
            h.m.into_iter().collect::<Vec<_>>(),
            [("a".into(), 1), ("b".into(), 2)]
        );
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: u32,
        b: u32,
    }

    #[test]
    fn objects_only() {
        let p: Object<Pair> = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(p.0, Pair { a: 1, b: 2 });
        assert!(
            serde_json::from_str::<Pair>("[1,2]").is_ok(),
            "serde's default"
        );
        let e = serde_json::from_str::<Object<Pair>>("[1,2]").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid type: sequence, expected an object"),
            "{e}"
        );
        let e = serde_json::from_str::<Object<Pair>>(r#"{"a":1,"c":2}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `c`"), "{e}");
    }

    #[test]
    fn refuses_duplicates_and_non_objects() {
        let e = serde_json::from_str::<Holder>(r#"{"m":{"a":1,"a":2}}"#).unwrap_err();
        assert!(e.to_string().starts_with("duplicate key \"a\""), "{e}");
        let e = serde_json::from_str::<Holder>(r#"{"m":[1]}"#).unwrap_err();
        assert!(e.to_string().contains("expected an object"), "{e}");
    }
}
