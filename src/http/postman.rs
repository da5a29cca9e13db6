//! A Postman collection (format v2.1) made from the OpenAPI document, served at
//! `/api/v1/postman.json`: one folder per tag, one request per operation with its path
//! variables, query parameters (off until ticked) and a JSON body skeleton from its schema.
//! Requests use `{{baseUrl}}` and a bearer `{{token}}`; signing in (or verifying, or
//! refreshing) stores the new access token in `token` by itself.
//!
//! Why it is kept, though Postman imports OpenAPI 3.1 itself: an imported document has no
//! scripts, so every request after signing in would need the token pasted by hand; and
//! Postman's own converter is an npm program, which would make a Node step part of the
//! server's build. This is generated from the same document at run time, so it cannot drift
//! from the API.

use serde_json::{Map, Value, json};

/// Operations whose reply carries an `accessToken` to keep.
const SIGN_IN_OPERATIONS: [&str; 3] = ["login", "verify", "refresh"];

/// The collection for `openapi`.
pub fn collection(openapi: &utoipa::openapi::OpenApi) -> Value {
    let doc = serde_json::to_value(openapi).unwrap_or(Value::Null);
    let schemas = doc["components"]["schemas"].clone();
    let mut folders: Vec<(String, Vec<Value>)> = Vec::new();
    for (path, operations) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in operations.as_object().into_iter().flatten() {
            let item = request_item(path, method, operation, &schemas);
            let tag = operation["tags"][0].as_str().unwrap_or("other").to_string();
            match folders.iter_mut().find(|(name, _)| *name == tag) {
                Some((_, items)) => items.push(item),
                None => folders.push((tag, vec![item])),
            }
        }
    }
    let items: Vec<Value> = folders
        .into_iter()
        .map(|(name, item)| json!({ "name": name, "item": item }))
        .collect();
    json!({
        "info": {
            "name": doc["info"]["title"].as_str().unwrap_or("Huddle API"),
            "description": "Generated from /api/v1/openapi.json. Set `baseUrl` (e.g. http://127.0.0.1:3000); \
                            `auth > login` (or `verify`) stores the access token in `token`.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "auth": bearer(),
        "variable": [
            { "key": "baseUrl", "value": "http://127.0.0.1:3000" },
            { "key": "token", "value": "" },
        ],
        "item": items,
    })
}

fn bearer() -> Value {
    json!({ "type": "bearer", "bearer": [{ "key": "token", "value": "{{token}}", "type": "string" }] })
}

fn request_item(path: &str, method: &str, operation: &Value, schemas: &Value) -> Value {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => format!(":{name}"),
            None => s.to_string(),
        })
        .collect();
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let variables: Vec<Value> = parameters
        .iter()
        .filter(|p| p["in"] == "path")
        .map(|p| json!({ "key": p["name"], "value": "", "description": p["description"] }))
        .collect();
    let query: Vec<Value> = parameters
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| json!({ "key": p["name"], "value": "", "disabled": true, "description": p["description"] }))
        .collect();
    let mut request = Map::new();
    request.insert("method".into(), json!(method.to_ascii_uppercase()));
    request.insert(
        "url".into(),
        json!({
            "raw": format!("{{{{baseUrl}}}}/{}", segments.join("/")),
            "host": ["{{baseUrl}}"],
            "path": segments,
            "variable": variables,
            "query": query,
        }),
    );
    if operation.get("security").is_none() {
        request.insert("auth".into(), json!({ "type": "noauth" }));
    }
    let body_schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    if !body_schema.is_null() {
        let example = skeleton(body_schema, schemas, 0);
        request.insert(
            "header".into(),
            json!([{ "key": "Content-Type", "value": "application/json" }]),
        );
        request.insert(
            "body".into(),
            json!({
                "mode": "raw",
                "raw": serde_json::to_string_pretty(&example).unwrap_or_default(),
                "options": { "raw": { "language": "json" } },
            }),
        );
    }
    if let Some(description) = operation["summary"].as_str() {
        request.insert("description".into(), json!(description));
    }
    let name = operation["operationId"].as_str().unwrap_or(path).to_string();
    let mut item = json!({ "name": name, "request": request });
    if SIGN_IN_OPERATIONS.contains(&name.as_str()) {
        item["event"] = json!([{
            "listen": "test",
            "script": { "type": "text/javascript", "exec": [
                "const body = pm.response.json();",
                "if (body.accessToken) { pm.collectionVariables.set('token', body.accessToken); pm.environment.set('token', body.accessToken); }",
            ] },
        }]);
    }
    item
}

/// A JSON value shaped like `schema`: every property present, with an empty value of its
/// type (the first enum value for enums).
fn skeleton(schema: &Value, schemas: &Value, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return skeleton(&schemas[name], schemas, depth + 1);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[key]
            .as_array()
            .and_then(|v| v.iter().find(|s| s["type"] != "null"))
        {
            return skeleton(first, schemas, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|k| *k != "null").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    match kind.as_str() {
        Some("object") => {
            let mut object = Map::new();
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                object.insert(name.clone(), skeleton(property, schemas, depth + 1));
            }
            Value::Object(object)
        }
        Some("array") => json!([]),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        Some("string") => json!(""),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_becomes_a_request_in_its_tags_folder() {
        let openapi = crate::http::openapi();
        let collection = collection(&openapi);
        let doc = serde_json::to_value(&openapi).unwrap();
        let mut expected = 0;
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                expected += 1;
                let tag = operation["tags"][0].as_str().unwrap();
                let folder = collection["item"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["name"] == tag)
                    .unwrap_or_else(|| panic!("folder {tag}"));
                let raw = format!("{{{{baseUrl}}}}{}", path.replace('{', ":").replace('}', ""));
                let found = folder["item"].as_array().unwrap().iter().any(|item| {
                    item["request"]["url"]["raw"] == raw.as_str()
                        && item["request"]["method"] == method.to_ascii_uppercase().as_str()
                });
                assert!(found, "{method} {path} is in the collection");
            }
        }
        let total: usize = collection["item"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["item"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, expected);
        assert_eq!(collection["auth"]["bearer"][0]["value"], "{{token}}");
    }

    #[test]
    fn bodies_are_filled_from_schemas_and_sign_in_keeps_the_token() {
        let collection = collection(&crate::http::openapi());
        let auth = collection["item"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "auth")
            .unwrap();
        let login = auth["item"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "login")
            .unwrap();
        let body: Value = serde_json::from_str(login["request"]["body"]["raw"].as_str().unwrap()).unwrap();
        assert_eq!(body["email"], "");
        assert_eq!(body["password"], "");
        assert_eq!(login["request"]["auth"]["type"], "noauth");
        let script = login["event"][0]["script"]["exec"].to_string();
        assert!(script.contains("pm.collectionVariables.set('token'"), "{script}");
    }
}
