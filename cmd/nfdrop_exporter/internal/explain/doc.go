package explain

// The command's formats, flags, JSON schema (schema_version 1: fields are
// only ever added, none removed, renamed or changing meaning), the accuracy
// of the top lists and what a LOG line cannot say are documented in
// README.md next to this file.
