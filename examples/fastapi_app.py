"""A FastAPI service keeping documents in recostate, with ETags and compare-and-set.

Run it (``pip install recostate[fastapi] uvicorn``)::

    REDIS_URL=redis://localhost:6379/0 uvicorn examples.fastapi_app:app

Then::

    curl -X PUT localhost:8000/docs/readme -H 'If-None-Match: *' \
         -H 'content-type: application/json' -d '{"title": "draft"}'       # 201, ETag: "1"
    curl localhost:8000/docs/readme                                       # ETag: "1"
    curl -X PUT localhost:8000/docs/readme -H 'If-Match: "1"' \
         -H 'content-type: application/json' -d '{"title": "final"}'      # 200, ETag: "2"
    curl -X PUT localhost:8000/docs/readme -H 'If-Match: "1"' ...         # 409, current 2
    curl -X POST localhost:8000/docs/readme/rollback/1                    # ETag: "3"
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Response

from recostate.contrib.fastapi import (
    RequiredExpectedVersion,
    Store,
    add_exception_handlers,
    recostate_lifespan,
    set_etag,
)

Document = Annotated[dict[str, Any], Body()]


def create_app(redis_url: str | None = None) -> FastAPI:
    """Build the application on ``redis_url`` (default: ``REDIS_URL``, else localhost)."""
    url = redis_url or os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    app = FastAPI(
        title="documents",
        lifespan=recostate_lifespan(url, key_prefix="docs-app", max_versions=20),
    )
    add_exception_handlers(app)

    @app.get("/docs/{doc_id}")
    async def read_document(doc_id: str, store: Store, response: Response) -> dict[str, Any]:
        found = await store.load_with_metadata(doc_id)
        if found is None:
            raise HTTPException(404, f"no document {doc_id!r}")
        document, meta = found
        set_etag(response, meta)
        return {"id": doc_id, "version": meta.version, "document": document}

    @app.put("/docs/{doc_id}")
    async def write_document(
        doc_id: str,
        document: Document,
        store: Store,
        expected: RequiredExpectedVersion,
        response: Response,
    ) -> dict[str, Any]:
        # The write happens only if the head is still the version the client
        # read (If-Match), or if there is none yet (If-None-Match: *).
        meta = await store.save(doc_id, document, expected_version=expected)
        set_etag(response, meta)
        if meta.version == 1:
            response.status_code = 201
        return {"id": doc_id, "version": meta.version}

    @app.get("/docs/{doc_id}/versions")
    async def list_versions(doc_id: str, store: Store) -> list[dict[str, Any]]:
        versions = await store.list_versions(doc_id)
        if not versions:
            raise HTTPException(404, f"no document {doc_id!r}")
        return [
            {
                "version": meta.version,
                "updated_at": meta.updated_at.isoformat(),
                "size_bytes": meta.size_bytes,
                "rolled_back_from": meta.rolled_back_from,
            }
            for meta in versions
        ]

    @app.post("/docs/{doc_id}/rollback/{version}")
    async def roll_back(
        doc_id: str, version: int, store: Store, response: Response
    ) -> dict[str, Any]:
        meta = await store.rollback(doc_id, version)  # 404 when that version is not kept
        set_etag(response, meta)
        return {"id": doc_id, "version": meta.version, "restores": meta.rolled_back_from}

    @app.delete("/docs/{doc_id}", status_code=204)
    async def delete_document(doc_id: str, store: Store) -> Response:
        if not await store.delete(doc_id):
            raise HTTPException(404, f"no document {doc_id!r}")
        return Response(status_code=204)

    return app


app = create_app()
