// The Container module reads and writes config.json with the JSON module's reader and writer; re-exported so
// code that imports Container (the CLI, Compare, the tests) sees JSONValue and JSONParser as before.
@_exported import JSON
