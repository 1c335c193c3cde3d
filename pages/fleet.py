"""Fleet: every host of a fleet store at once: hosts (stale ones said, since when), used memory per host over the
window (a click on a host opens its Overview), the top processes and subtrees across hosts at the chosen moment, the
fleet's leak ranking and a process name's totals on every host. First paint reads the rollups only (memlib.fleet
reads the files of partitions without a fresh rollup); without any rollup for the day, the top across hosts is read
from the files after a click, and the page says to run the rollup (not run from here: the store may be read-only to
the dashboard and a fleet's rollup takes minutes). The name search reads the files when asked."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import fleet  # noqa: E402
from memlib.display import visible_frame  # noqa: E402
from memlib.units import fmt_bytes, iso_z  # noqa: E402
from ui import data, fleet_charts, nav, render, sidebar, state  # noqa: E402
from ui import source as source_choice  # noqa: E402
from ui.charts import plot_config  # noqa: E402
from ui.render import fmt_ts  # noqa: E402

HEATMAP_BINS = 240  # time buckets of the hosts x time heatmap
GROUP_BINS = 300
TOP_K = 15

ctx = sidebar.start_page("Fleet", whole_store=True)
view, unit, at = ctx.view, ctx.unit, ctx.at
lo, hi = ctx.window
rec = ctx.rec
span = f"{render.file_stamp(lo)}_{render.file_stamp(hi)}"


def _open_host(host: str, page: str = nav.PAGE_OVERVIEW, **params: str) -> None:
    """Switch to `page` for `host` (URL `host=`), keeping the window and the chosen recording."""
    query = {**state.to_query(view.replace(group=None, pid=None, start=None)), **params, "host": host}
    if "source" in st.query_params:
        query["source"] = st.query_params["source"]
    st.switch_page(page, query_params=query)


rollups = ctx.ask(fleet.rollup_state)
hosts = ctx.ask(fleet.hosts, state=rollups)
if rollups.complete:
    st.caption("Charts and rankings read from the rollups (memlib.rollup), which cover every closed segment.")
else:
    st.info("The rollups do not cover every closed segment: some answers come from the files.", icon=":material/info:")
    st.text(source_choice.viewer_text(rollups.note() or ""))  # names partitions (host names): text, never Markdown
for note in hosts.notes:
    st.caption("Staleness: " + note)

# ---- hosts: a click opens the host's Overview
rows = hosts.rows
stale = rows[rows["status"].to_numpy() == "stale"]
if len(stale):
    st.warning(
        f"{len(stale)} of {len(rows)} host(s) are stale: their segments stopped arriving.", icon=":material/schedule:"
    )
    since = zip(stale["host"], stale["stale_since"], strict=True)
    st.text(source_choice.viewer_text("\n".join(f"{h}: no data since {fmt_ts(t)}" for h, t in since)))
st.subheader("Hosts", divider="gray", anchor=False)
table = pd.DataFrame(
    {
        "host": rows["host"].astype(str).to_numpy(),
        "status": rows["status"].to_numpy(),
        "stale since": rows["stale_since"].to_numpy(),
        "last sample": rows["last_sample"].to_numpy(),
        "used": render.in_unit(rows["mem_used_bytes"], unit).to_numpy(),
        "RAM": render.in_unit(rows["mem_total_bytes"], unit).to_numpy(),
        "samples": rows["samples"].to_numpy(),
    }
)
event = st.dataframe(
    table,
    hide_index=True,
    placeholder=render.MISSING,
    width="stretch",
    height=render.table_height(len(table)),
    column_config={
        "host": st.column_config.TextColumn("Host", help="Click to open this host's Overview"),
        "used": render.memory_column("Used at last sample", unit, "MemTotal − MemAvailable at the host's last sample"),
        "RAM": render.memory_column("RAM", unit),
        "stale since": st.column_config.DatetimeColumn("Stale since", format="YYYY-MM-DD HH:mm:ss"),
        "last sample": st.column_config.DatetimeColumn("Last sample", format="YYYY-MM-DD HH:mm:ss"),
    },
    on_select="rerun",
    selection_mode=["single-row", "single-cell"],
    key="fleet_hosts",
)
picked = nav.clicked_process(event, table, None)
if picked is not None:
    _open_host(str(picked["host"]))
render.download_buttons(rows, "fleet_hosts", key="dl_fleet_hosts")

used, used_from = ctx.ask(fleet.used_memory, lo, hi, HEATMAP_BINS, state=rollups)
fig = data.figure(
    "fleet_used",
    ctx.loaded.token,
    (lo, hi, unit, at),
    lambda: fleet_charts.used_heatmap(used, list(rec.hosts), unit, at),
)
st.plotly_chart(fig, width="stretch", config=plot_config(f"fleet_used_{span}"), key="fleet_heatmap")
st.caption(
    f"From the {'host_minute rollups' if used_from == 'rollups' else 'closed files'}; an empty cell has no samples "
    "(a stale host is not zero). Click a host in the table above to open its Overview."
)

# ---- top processes and subtrees across hosts at the moment
st.subheader(f"Top across hosts at {fmt_ts(at)}", divider="gray", anchor=False)
day = at.date().isoformat()
behind = [p for p in rollups.stale + rollups.missing if p.endswith(f"/date={day}")]
from_rollups = any(p.endswith(f"/date={day}") for p in rollups.fresh + rollups.stale)  # rolled up that day
from_files = not from_rollups and st.toggle(
    "Read each host's snapshot from the files",
    key="fleet_top_files",
    help="No rollups for this day: the files of every host are read (slow on a large fleet).",
)
longest = float(rows["period_s"].max()) if len(rows) else None
tops = ctx.ask(fleet.top_rollups, at, TOP_K, longest) if from_rollups else None  # both kinds in one read
if from_rollups and behind:
    st.text(
        source_choice.viewer_text(
            f"{len(behind)} host(s) changed since their rollup of that day (e.g. {behind[0]}): their latest "
            "rolled-up minute is shown. Run `python -m memlib fleet rollup --dumps STORE` to bring it up to date."
        )
    )
elif not from_rollups and not from_files:
    st.info(
        "No rollups for this day yet: run `python -m memlib fleet rollup --dumps STORE`, or switch on reading "
        "each host's snapshot from the files above.",
        icon=":material/info:",
    )
left, right = st.columns(2)
for col, by, title in ((left, "rss", "Processes (own RSS)"), (right, "subtree", "Subtrees (subtree RSS)")):
    if tops is None and not from_files:
        break
    got = tops[by] if tops is not None else ctx.ask(fleet.top, at, by, TOP_K)
    with col:
        st.markdown(f"**{title}**")
        r = got.rows
        if r.empty:
            st.caption("No host has data at this moment.")
            continue
        value = r["bytes"] if from_rollups else r["subtree_rss_bytes" if by == "subtree" else "rss_bytes"]
        shown = pd.DataFrame(
            {
                "host": r["host"].astype(str).to_numpy(),
                "pid": r["pid"].to_numpy(),
                "name": r["name"].astype(str).to_numpy(),
                "user": r["user"].astype(str).to_numpy(),
                "memory": render.in_unit(value, unit).to_numpy(),
                "when": (r["minute"] if from_rollups else r["ts"]).to_numpy(),
            }
        )
        clicked = render.clickable_table(
            shown,
            key=f"fleet_top_{by}_{at.value}",
            column_config={
                **render.process_table_config(unit),
                "host": st.column_config.TextColumn("Host"),
                "memory": render.memory_column("Peak in minute" if from_rollups else "RSS", unit),
                "when": st.column_config.DatetimeColumn(
                    "Minute" if from_rollups else "Snapshot", format="YYYY-MM-DD HH:mm:ss"
                ),
            },
            processes=r,
        )
        render.download_buttons(r, f"fleet_top_{by}_{render.file_stamp(at)}", key=f"dl_fleet_top_{by}")
        for note in got.notes:
            st.text(note)
        if clicked is not None:
            when = clicked["minute"] if from_rollups else clicked["ts"]
            _open_host(
                str(clicked["host"]), nav.PAGE_PID, pid=str(int(clicked["pid"])),
                start=iso_z(clicked["start_time"]), at=iso_z(when),
            )  # fmt: skip
if from_rollups or from_files:
    st.caption(
        "Each host at its latest rolled-up minute at or before the moment (peaks within that minute)."
        if from_rollups
        else "Each host at its snapshot at or just before the moment (from the closed files)."
    )

# ---- leak ranking from the rollups
st.subheader("Leak ranking across the fleet", divider="gray", anchor=False)
leaks = ctx.ask(fleet.leaks, 20, state=rollups)
if not (leaks.state.fresh or leaks.state.stale):
    st.info(
        "No leak ranking yet: the rollups have not been computed. Run `python -m memlib fleet rollup --dumps STORE` "
        "(or with `--engine spark://HOST:PORT`).",
        icon=":material/info:",
    )
elif leaks.rows.empty:
    st.caption("No process's memory floor kept growing (floor growth × r² > 0 over at least 10 minutes).")
else:
    lr = leaks.rows
    ltable = pd.DataFrame(
        {
            "host": lr["host"].astype(str).to_numpy(),
            "pid": lr["pid"].to_numpy(),
            "name": lr["name"].astype(str).to_numpy(),
            "user": lr["user"].astype(str).to_numpy(),
            "rate": render.in_unit(lr["floor_growth_bytes_per_hour"], unit).to_numpy(),
            "r2": lr["floor_r2"].to_numpy(),
            "peak": render.in_unit(lr["rss_max_bytes"], unit).to_numpy(),
            "since": lr["first_seen"].to_numpy(),
        }
    )
    clicked = render.clickable_table(
        ltable,
        key="fleet_leaks",
        column_config={
            **render.process_table_config(unit),
            "host": st.column_config.TextColumn("Host"),
            "rate": render.memory_column("Floor growth / h", unit, "Least-squares slope of the 10-minute minima"),
            "r2": st.column_config.NumberColumn("r²", format="%.3f", help="1 = steady growth, near 0 = bursts"),
            "peak": render.memory_column("Peak RSS", unit),
            "since": st.column_config.DatetimeColumn("Seen since", format="YYYY-MM-DD HH:mm:ss"),
        },
        processes=lr,
    )
    render.download_buttons(lr, "fleet_leaks", key="dl_fleet_leaks")
    if clicked is not None:
        _open_host(
            str(clicked["host"]), nav.PAGE_PID, pid=str(int(clicked["pid"])),
            start=iso_z(clicked["start_time"]),
        )  # fmt: skip
    if leaks.note:
        st.text(source_choice.viewer_text("Rollups: " + leaks.note))

# ---- a process name on every host
st.subheader("A process name across hosts", divider="gray", anchor=False)


def _set_group() -> None:
    state.update_state(group=str(st.session_state["fleet_group"])[: state.MAX_MATCH_LEN] or None)


st.session_state["fleet_group"] = view.group or ""
st.text_input("Process name contains", key="fleet_group", on_change=_set_group, placeholder="e.g. postgres")
if view.group:
    grp = ctx.ask(fleet.groups, "name", view.group, lo, hi, GROUP_BINS, None)
    if grp.empty:
        st.text(f"No process whose name contains {view.group!r} ran in this window on any host.")
    else:
        st.plotly_chart(
            fleet_charts.group_figure(grp, unit, at),
            width="stretch",
            config=plot_config(f"fleet_group_{span}"),
            key="fleet_group_chart",
        )
        peaks = grp.groupby(["host", "group"], sort=True).agg(peak=("rss_bytes", "max"), most=("processes", "max"))
        peaks = peaks.reset_index()
        st.dataframe(
            visible_frame(
                pd.DataFrame(
                    {
                        "host": peaks["host"].astype(str).to_numpy(),
                        "name": peaks["group"].astype(str).to_numpy(),
                        "peak": render.in_unit(peaks["peak"], unit).to_numpy(),
                        "processes": peaks["most"].to_numpy(),
                    }
                )
            ),  # names with control or bidi characters shown escaped
            hide_index=True,
            width="stretch",
            column_config={
                "peak": render.memory_column("Peak total RSS", unit),
                "processes": st.column_config.NumberColumn("Most at once", format="%d"),
            },
            key="fleet_group_table",
        )
        render.download_buttons(grp, f"fleet_group_{span}", key="dl_fleet_group")
        total = int(grp.groupby("ts")["rss_bytes"].sum().max())
        st.caption(f"Largest fleet-wide total in one bucket: {fmt_bytes(total)}.")
else:
    st.caption("Type a process name (e.g. postgres) to see its total on every host over the window.")

# ---- files skipped while answering (a damaged file is named; the other hosts' answers stand)
skipped = [n for n in rec.notices if "skipped" in n]
if skipped:
    st.warning(f"{len(skipped)} file(s) were skipped; every other file is shown:", icon=":material/warning:")
    st.text(source_choice.viewer_text("\n".join(skipped[:20])))
