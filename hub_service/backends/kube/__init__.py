"""The ``kubernetes`` backend: stateless, DaskCluster resources run by the controller."""
