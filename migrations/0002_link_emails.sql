-- Account linking looks identities up by their last-known email (lower-cased).
ALTER TABLE identity_links ADD COLUMN email TEXT;
UPDATE identity_links SET email = lower(claims->>'email');
CREATE INDEX identity_links_email ON identity_links (email);
