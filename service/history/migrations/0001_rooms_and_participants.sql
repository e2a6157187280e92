-- Room history: one row per room (the latest document the materializer published for it) and one
-- row per participant session. Documented for analysts in docs/history.md.
--
-- SIDs and names use the "C" collation: the API pages in byte order of the SID (as Python sorts),
-- whatever the database's default collation.

CREATE TABLE rooms (
    sid                             text COLLATE "C" PRIMARY KEY,
    account_sid                     text,
    unique_name                     text COLLATE "C" NOT NULL,
    status                          text NOT NULL,              -- in-progress | completed | failed
    type                            text,                       -- group | group-small | peer-to-peer | go
    provider                        text NOT NULL DEFAULT 'twilio',
    date_created                    timestamptz NOT NULL,
    date_updated                    timestamptz,
    end_time                        timestamptz,
    duration                        integer,                    -- seconds
    end_reason                      text,                       -- callback | api | empty-room-timeout ...
    failure_reason                  text,
    created_via                     text,                       -- api | callback
    peak_participants               integer NOT NULL DEFAULT 0, -- most participants connected at once
    participant_sessions            integer NOT NULL DEFAULT 0, -- rows in participants for the room
    max_participants                integer,
    max_participant_duration        integer,
    max_concurrent_published_tracks integer,
    empty_room_timeout              integer,
    unused_room_timeout             integer,
    audio_only                      boolean,
    enable_turn                     boolean,
    large_room                      boolean,
    record_participants_on_connect  boolean,
    media_region                    text,
    status_callback                 text,
    status_callback_method          text,
    video_codecs                    text[],
    -- The order of the room's documents: (version, last event time, date_updated), compared as a row.
    -- version is the document's `version` (-1 for documents that do not carry one).
    version                         bigint NOT NULL,
    last_event_ms                   bigint NOT NULL,
    date_updated_ms                 bigint NOT NULL,
    date_created_ms                 bigint NOT NULL,            -- the API's sort key (exact milliseconds)
    doc                             jsonb NOT NULL              -- the full room document, as published
);

-- The API's list order (newest first, then SID) with its filters.
CREATE INDEX rooms_list ON rooms (date_created_ms DESC, sid);
CREATE INDEX rooms_status_list ON rooms (status, date_created_ms DESC, sid);
CREATE INDEX rooms_unique_name ON rooms (unique_name, date_created_ms DESC);
-- Analysts: rooms per day/hour.
CREATE INDEX rooms_date_created ON rooms (date_created);

CREATE TABLE participants (
    room_sid    text COLLATE "C" NOT NULL REFERENCES rooms (sid) ON DELETE CASCADE,
    sid         text COLLATE "C" NOT NULL,
    identity    text,
    status      text NOT NULL,          -- connected | disconnected
    start_time  timestamptz NOT NULL,
    end_time    timestamptz,            -- null while connected
    duration    integer,                -- seconds
    PRIMARY KEY (room_sid, sid)
);

CREATE INDEX participants_start_time ON participants (start_time);
CREATE INDEX participants_identity ON participants (identity);
