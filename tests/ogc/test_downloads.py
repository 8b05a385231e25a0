from pathlib import Path


def test_explore(client, seeds, catalog):
    out = Path("/tmp/dl")
    for layer in catalog.layers:
        for f in ("gpkg", "fgb", "csv", "kml"):
            r = client.get(f"/collections/{layer}/items", params={"f": f})
            print(
                layer,
                f,
                r.status_code,
                dict(r.headers) if r.status_code != 200 else r.headers["content-type"],
                len(r.content),
            )
            if r.status_code != 200:
                print(r.text[:500])
            (out / f"{layer}.{f}").write_bytes(r.content)
    for params in [
        {"f": "gpkg", "filter": "status='nothing'"},
        {"f": "fgb", "filter": "status='nothing'"},
        {"f": "csv", "filter": "status='nothing'"},
        {"f": "kml", "filter": "status='nothing'"},
        {"f": "gpkg", "crs": "http://www.opengis.net/def/crs/EPSG/0/4549"},
        {"f": "fgb", "crs": "http://www.opengis.net/def/crs/EPSG/0/4549"},
        {"f": "fgb", "crs": "http://www.opengis.net/def/crs/EPSG/0/4490"},
    ]:
        r = client.get("/collections/rail_stations/items", params=params)
        print(params, r.status_code, r.text[:300] if r.status_code != 200 else len(r.content))
        if r.status_code == 200:
            (
                out
                / (
                    "x_"
                    + "_".join(
                        v[-6:].replace("'", "").replace("=", "").replace("/", "") for v in params.values()
                    )
                )
            ).write_bytes(r.content)
