"""The offline side: load articles -> split into passages -> encode -> store and index."""
