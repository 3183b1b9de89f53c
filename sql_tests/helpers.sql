-- Installed in every system's SQL template: lets a suite open a second session with
-- dblink on the very database it runs in (the harness picks the host and port).
CREATE OR REPLACE FUNCTION public.peer_connstr() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('host=%s port=%s dbname=%s user=%s',
                  host(inet_server_addr()), inet_server_port(), current_database(), current_user)
$$;
