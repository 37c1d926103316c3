-- Where the customer goes back to in the vendor's app: optional, checked
-- against LD_EAAS_RETURN_URL_ORIGINS when the link is made, and carried
-- into the browser session when the link binds it.
alter table connect_links add column return_url text
    check (return_url is null or (length(return_url) between 1 and 2048));
