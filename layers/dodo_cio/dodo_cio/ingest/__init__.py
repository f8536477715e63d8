"""Stage 6a, ingest: one webhook through verify -> parse -> map -> deliver -> (park).

  service  `IngestService`: the flow, its deadlines and the answer Dodo gets (answers listed there)

The request and answer types are `dodo_cio.receiving.http_api`'s.
"""
