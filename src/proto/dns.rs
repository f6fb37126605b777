//! DNS messages for `resolver`, sans-io: the query ringx sends for a name and what
//! an answer means. The wire format is simple-dns's (a small, dependency-free
//! encoder and decoder with name compression); the transport, retries and the cache
//! are in [`crate::net::resolver`].
//!
//! nginx's rules kept here: an answer counts only if its ID and question match the
//! query; CNAMEs inside the answer are followed (to a few levels); the TTL of the
//! whole answer is the smallest TTL of the records used; an answer with no address
//! records is "Host not found" (nginx treats NODATA as NXDOMAIN for addresses).

use std::net::IpAddr;

use simple_dns::{rdata::RData, Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};

/// Address families a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Why a name did not resolve, with nginx's numbers and words
/// (`ngx_resolver_strerror`): the rcode, or 110 for a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsError(pub u16);

impl DnsError {
    pub const FORMERR: DnsError = DnsError(1);
    pub const SERVFAIL: DnsError = DnsError(2);
    pub const NXDOMAIN: DnsError = DnsError(3);
    pub const TIMEDOUT: DnsError = DnsError(110);
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = match self.0 {
            1 => "Format error",
            2 => "Server failure",
            3 => "Host not found",
            4 => "Unimplemented",
            5 => "Operation refused",
            110 => "Operation timed out",
            _ => "Unknown error",
        };
        write!(f, "{}: {words}", self.0)
    }
}

/// What one answer says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Addresses (in the order received) and the smallest TTL among them.
    Addrs(Vec<IpAddr>, u32),
    /// The name does not resolve (rcode, or no address records).
    Failed(DnsError),
    /// The reply was cut short (TC): ask again over TCP.
    Truncated,
}

/// The query for `name`: recursion desired, one question.
pub fn query(id: u16, name: &str, family: Family) -> Option<Vec<u8>> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    let qtype = match family {
        Family::V4 => TYPE::A,
        Family::V6 => TYPE::AAAA,
    };
    p.questions.push(Question::new(
        Name::new(name).ok()?,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    p.build_bytes_vec_compressed().ok()
}

/// The ID at the start of a message.
pub fn id_of(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

/// Reads the reply to the query `id` for `name`. `None`: not a reply to it (a
/// stray or forged datagram, to be ignored while waiting for the real one).
pub fn answer(msg: &[u8], id: u16, name: &str, family: Family) -> Option<Answer> {
    let p = Packet::parse(msg).ok()?;
    let asked = p.questions.first()?;
    if p.id() != id || !p.has_flags(PacketFlag::RESPONSE) || !same_name(&asked.qname, name) {
        return None;
    }
    if p.has_flags(PacketFlag::TRUNCATION) {
        return Some(Answer::Truncated);
    }
    let rcode = p.rcode();
    if rcode != RCODE::NoError {
        let code = rcode as u16;
        return Some(Answer::Failed(DnsError(code)));
    }
    // Follow CNAMEs from the name asked, as far as the answer goes.
    let mut target = name.trim_end_matches('.').to_ascii_lowercase();
    for _ in 0..8 {
        let next = p.answers.iter().find_map(|rr| match &rr.rdata {
            RData::CNAME(c) if same_name(&rr.name, &target) => Some(c.0.to_string().to_ascii_lowercase()),
            _ => None,
        });
        match next {
            Some(n) => target = n,
            None => break,
        }
    }
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for rr in p.answers.iter().filter(|rr| same_name(&rr.name, &target)) {
        let ip = match (&rr.rdata, family) {
            (RData::A(a), Family::V4) => IpAddr::from(a.address.to_be_bytes()),
            (RData::AAAA(a), Family::V6) => IpAddr::from(a.address.to_be_bytes()),
            _ => continue,
        };
        addrs.push(ip);
        ttl = ttl.min(rr.ttl);
    }
    Some(if addrs.is_empty() {
        Answer::Failed(DnsError::NXDOMAIN)
    } else {
        Answer::Addrs(addrs, ttl)
    })
}

fn same_name(n: &Name<'_>, want: &str) -> bool {
    n.to_string()
        .trim_end_matches('.')
        .eq_ignore_ascii_case(want.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{rdata, ResourceRecord};

    fn reply(id: u16, q: &str, f: impl FnOnce(&mut Packet<'static>)) -> Vec<u8> {
        let mut p = Packet::new_reply(id);
        p.questions.push(Question::new(
            Name::new(q).unwrap().into_owned(),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        f(&mut p);
        p.build_bytes_vec_compressed().unwrap()
    }

    fn a(name: &'static str, ip: [u8; 4], ttl: u32) -> ResourceRecord<'static> {
        ResourceRecord::new(
            Name::new(name).unwrap(),
            CLASS::IN,
            ttl,
            RData::A(rdata::A {
                address: u32::from_be_bytes(ip),
            }),
        )
    }

    #[test]
    fn query_asks_one_question_with_recursion() {
        let q = query(0x1234, "example.org", Family::V4).unwrap();
        let p = Packet::parse(&q).unwrap();
        assert_eq!(p.id(), 0x1234);
        assert!(p.has_flags(PacketFlag::RECURSION_DESIRED));
        assert_eq!(p.questions.len(), 1);
        assert_eq!(p.questions[0].qname.to_string(), "example.org");
    }

    #[test]
    fn addresses_ttl_and_cname_chain() {
        let m = reply(7, "www.x.org", |p| {
            p.answers.push(ResourceRecord::new(
                Name::new("www.x.org").unwrap(),
                CLASS::IN,
                300,
                RData::CNAME(rdata::CNAME(Name::new("edge.x.net").unwrap())),
            ));
            p.answers.push(a("edge.x.net", [10, 0, 0, 1], 60));
            p.answers.push(a("edge.x.net", [10, 0, 0, 2], 30));
            p.answers.push(a("other.x.net", [10, 9, 9, 9], 5));
        });
        let want = Answer::Addrs(vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()], 30);
        assert_eq!(answer(&m, 7, "WWW.x.org", Family::V4), Some(want));
    }

    #[test]
    fn foreign_replies_are_ignored() {
        let m = reply(7, "a.org", |p| p.answers.push(a("a.org", [1, 2, 3, 4], 9)));
        assert_eq!(answer(&m, 8, "a.org", Family::V4), None);
        assert_eq!(answer(&m, 7, "b.org", Family::V4), None);
        assert_eq!(answer(b"\x00\x07", 7, "a.org", Family::V4), None);
    }

    #[test]
    fn failures_carry_nginx_words() {
        let m = reply(1, "no.org", |p| *p.rcode_mut() = RCODE::NameError);
        assert_eq!(
            answer(&m, 1, "no.org", Family::V4),
            Some(Answer::Failed(DnsError::NXDOMAIN))
        );
        let empty = reply(2, "v6only.org", |_| {});
        assert_eq!(
            answer(&empty, 2, "v6only.org", Family::V4),
            Some(Answer::Failed(DnsError::NXDOMAIN))
        );
        assert_eq!(DnsError::NXDOMAIN.to_string(), "3: Host not found");
        assert_eq!(DnsError::TIMEDOUT.to_string(), "110: Operation timed out");
        let tc = reply(3, "big.org", |p| p.set_flags(PacketFlag::TRUNCATION));
        assert_eq!(answer(&tc, 3, "big.org", Family::V4), Some(Answer::Truncated));
    }
}
