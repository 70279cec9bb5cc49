"""LangGraph checkpointers on recostate (``pip install 'recostate[langgraph]'``).

::

    from recostate.contrib.langgraph import AsyncRecostateSaver

    async with AsyncRecostateSaver.from_conn_string("redis://localhost:6379/0") as saver:
        graph = builder.compile(checkpointer=saver)
        await graph.ainvoke(inputs, {"configurable": {"thread_id": "t-1"}})

:class:`AsyncRecostateSaver` is for asyncio code, :class:`RecostateSaver` its
blocking twin (``graph.invoke``). Both work on plain Redis 6.2 and 7.x,
Valkey and Redis Cluster, with no server modules. See
``docs/guides/langgraph.md``.
"""

from recostate.contrib.langgraph.saver import AsyncRecostateSaver, RecostateSaver

__all__ = ["AsyncRecostateSaver", "RecostateSaver"]
