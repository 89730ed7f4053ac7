"""The online side: retrieve -> fuse -> answer with citations; evaluation; the CLI."""
