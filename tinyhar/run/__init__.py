"""The run folder, owned in one place: `folder` names its files and checks what made them,
`firmware` places a build's firmware inside it, `records` reads and writes its JSON as types."""
