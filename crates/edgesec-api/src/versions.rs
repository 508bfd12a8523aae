//! The IoT Edge api-versions edgesecd accepts on both APIs. Every route answers every version,
//! as the IoT Edge daemon does.

pub const API_VERSIONS: &[&str] = &[
    "2018-06-28",
    "2019-01-30",
    "2019-10-22",
    "2019-11-05",
    "2020-07-07",
    "2021-12-07",
    "2022-08-03",
];

/// The version edgesecd's own clients use and tells modules to use (`IOTEDGE_APIVERSION`).
pub const LATEST_API_VERSION: &str = "2022-08-03";
