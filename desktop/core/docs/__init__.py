"""Local documents: collections of the user's folders and files, read (parsing), cut into
passages (chunking), indexed in SQLite with their embeddings (store, indexer), and searched by
words and meaning together (search), for the chat model to answer from."""
